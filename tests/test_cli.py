"""The `transferlab` command, run in-process as a user would type it."""

import json
import sys
from pathlib import Path

import pytest

from transferlab.cli import main

from .conftest import TINY


def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["transferlab", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
        sys.exit(0)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_check_lists_layout_counts_and_skipped_files(capsys, monkeypatch, photo_folder: Path) -> None:
    code, out, _ = cli(capsys, monkeypatch, "check", photo_folder)
    assert code == 0 and "layout folder" in out and "3 classes" in out and "0 skipped" in out
    (photo_folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code, out, _ = cli(capsys, monkeypatch, "check", photo_folder, "--json")
    report = json.loads(out)
    assert code == 1 and [Path(s["path"]).name for s in report["skipped"]] == ["broken.jpg"]
    assert report["counts"]["cat"] and report["layout"] == "folder"


def test_train_evaluate_predict(capsys, monkeypatch, photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, _ = cli(capsys, monkeypatch, "train", photo_folder, "-b", TINY, "--weights", tiny_weights, "--out", run, "--precision", "fp32", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["run"] == str(run) and summary["metrics"]["accuracy"] >= 0.9

    code, out, _ = cli(capsys, monkeypatch, "evaluate", run, photo_folder, "--json", "--out", tmp_path / "ev")
    assert code == 0 and json.loads(out)["accuracy"] == summary["metrics"]["accuracy"]
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()

    code, out, _ = cli(capsys, monkeypatch, "predict", run, photo_folder / "dog", "--json", "-k", "2")
    results = json.loads(out)
    assert code == 0 and len(results) == 10
    assert set(results[0]) == {"path", "label", "index", "closest", "prob", "in_distribution", "score", "unsure", "top"} and [set(t) for t in results[0]["top"]] == [{"label", "index", "prob"}] * 2
    assert all(r["label"] in (r["closest"], None) and isinstance(r["score"], float) and r["in_distribution"] == (r["label"] is not None) for r in results)

    code, out, _ = cli(capsys, monkeypatch, "predict", run, photo_folder / "dog" / "dog_0.jpg", "--csv", "-k", "1")
    assert code == 0 and len(out.splitlines()) == 2 and out.splitlines()[0] == "path,rank,label,prob" and ",1,\"dog\"," in out.splitlines()[1]

    code, out, _ = cli(capsys, monkeypatch, "predict", run, photo_folder / "fox" / "fox_1.jpg")
    assert code == 0 and "fox" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "/no/such/folder"], "does not exist"),
        (["train", "{photos}", "-b", "resnet5O"], "did you mean"),
        (["train", "{photos}", "-b", "resnet18"], "--weights"),
        (["evaluate", "{photos}", "{photos}"], "not a transferlab run"),
        (["predict", "efficientnet_lite0", "/no/such.jpg"], "does not exist"),
        (["train", "{photos}", "--strategy", "auto", "--budget", "soon"], "expected a time budget"),
        (["train", "{photos}", "--accept", "1.5"], "expected --accept in (0, 1]"),
        # a value outside a flag's choices (--strategy magic) is the parser's usage error: test_cli_grammar.py
    ],
)
def test_user_errors_are_one_line_without_traceback(capsys, monkeypatch, photo_folder: Path, args, message) -> None:
    code, out, err = cli(capsys, monkeypatch, *[a.replace("{photos}", str(photo_folder)) for a in args])
    assert code == 1
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_backbones_lists_bundled_first(capsys, monkeypatch) -> None:
    code, out, _ = cli(capsys, monkeypatch, "backbones")
    assert code == 0 and out.splitlines()[0].startswith("efficientnet_lite0") and "bundled" in out
    code, out, _ = cli(capsys, monkeypatch, "backbones", "resnet5*")
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert code == 0 and "resnet50" in names and all(n.startswith("resnet5") for n in names)  # the filter filters


def test_train_finetune_flags_reach_the_recipe(capsys, monkeypatch, photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    args = ["train", photo_folder, "-b", TINY, "--weights", tiny_weights, "--out", tmp_path / "ft", "--precision", "fp32", "--json"]
    code, out, _ = cli(capsys, monkeypatch, *args, "--strategy", "finetune", "--epochs", "1", "--lr", "0.002", "--unfreeze", "2", "--augment", "strong", "--ft-batch-size", "4")
    assert code == 0, out
    meta = json.loads((tmp_path / "ft" / "model.json").read_text())
    recipe = meta["hyperparameters"]["finetune"]
    assert (recipe["epochs"], recipe["lr"], recipe["unfreeze"], recipe["augment"], recipe["batch_size"]) == (1, 0.002, "2", "strong", 4)
    assert [row["epoch"] for row in meta["finetune"]["history"]] == [0, 1]


def test_train_needs_data_or_resume(capsys, monkeypatch, tmp_path: Path) -> None:
    code, _, err = cli(capsys, monkeypatch, "train")
    assert code == 1 and "--resume" in err
    code, _, err = cli(capsys, monkeypatch, "train", "--resume", tmp_path)
    assert code == 1 and "no checkpoint.pt" in err


def test_train_names_the_held_out_split_and_evaluate_flags_seen_images(capsys, monkeypatch, tiny_weights: Path, tmp_path: Path) -> None:
    from .test_training import LAYOUTS, random_labels

    data = random_labels(tmp_path / "data", LAYOUTS["train+val"])
    code, out, _ = cli(capsys, monkeypatch, "train", data, "-b", TINY, "--weights", tiny_weights, "--out", tmp_path / "run", "--precision", "fp32", "-q")
    assert code == 0 and "val accuracy" in out and "held out, never used to fit or choose" in out and "choices on holdout of train" in out
    code, out, _ = cli(capsys, monkeypatch, "evaluate", tmp_path / "run", data, "--split", "train", "--json", "--out", tmp_path / "ev")
    report = json.loads(out)
    assert code == 0 and report["seen_in_training"] == report["n"] == 96 and "unseen" not in report
