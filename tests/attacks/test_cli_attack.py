"""`transferlab attack` and `transferlab robustness` as a user types them."""

import json

from ..test_cli import cli


def test_attack_command(capsys, monkeypatch, tiny_run, pet_photos, tmp_path) -> None:
    png = tmp_path / "adv.png"
    code, out, _ = cli(capsys, monkeypatch, "attack", tiny_run.directory, pet_photos / "dog" / "dog_2.jpg", "--target", "fox", "--eps", "16/255", "-o", png, "--transfer-to", tiny_run.directory, "--json")
    record = json.loads(out)
    assert code == 0 and record["success"] and record["target"]["class"] == "fox"
    assert record["eps_255"] == 16 and record["transfer"][0]["fooled"] is True  # the same model is fooled
    assert png.is_file() and (tmp_path / "adv_figure.png").is_file() and (tmp_path / "adv.json").is_file()


def test_attack_command_prints_the_verdict_and_the_change(capsys, monkeypatch, tiny_run, pet_photos, tmp_path) -> None:
    code, out, err = cli(capsys, monkeypatch, "attack", tiny_run.directory, pet_photos / "dog" / "dog_2.jpg", "--target", "fox", "--eps", "16/255", "-o", tmp_path / "adv.png")
    assert code == 0 and "success" in out and "→ fox" in out and "PSNR" in out and "wrote" in out, err


def test_attack_threads_apply_while_the_command_runs_and_are_given_back(capsys, monkeypatch, tiny_run, pet_photos, tmp_path) -> None:
    # regression: building the flags' AttackConfig set torch's thread count for the rest of the process
    import torch

    import transferlab as tl

    seen, attack = [], tl.attack
    monkeypatch.setattr(tl, "attack", lambda *args, **kwargs: seen.append(torch.get_num_threads()) or attack(*args, **kwargs))
    before = torch.get_num_threads()
    code, _, err = cli(capsys, monkeypatch, "attack", tiny_run.directory, pet_photos / "dog" / "dog_2.jpg", "--eps", "4/255", "--steps", "2", "--threads", str(before + 1), "-o", tmp_path / "adv.png", "--json")
    assert code == 0, err
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_attack_command_rejects_eps_in_levels(capsys, monkeypatch, tiny_run, pet_photos) -> None:
    code, _, err = cli(capsys, monkeypatch, "attack", tiny_run.directory, pet_photos / "dog" / "dog_2.jpg", "--eps", "8")
    assert code == 1 and "8/255" in err and "Traceback" not in err


def test_robustness_command(capsys, monkeypatch, tiny_run, pet_photos, tmp_path) -> None:
    code, out, _ = cli(capsys, monkeypatch, "robustness", tiny_run.directory, pet_photos, "--eps", "0,4/255", "--steps", "5", "--val-frac", "0.2", "--test-frac", "0.3", "-o", tmp_path, "--targeted", "--per-class", "2")
    assert code == 0 and "wrote" in out
    assert {p.name for p in tmp_path.iterdir()} >= {"robustness.csv", "robustness.png", "success_matrix.csv", "success_matrix.png"}
