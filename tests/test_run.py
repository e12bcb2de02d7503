"""The high-level API a notebook uses: train, save/load, evaluate, predict."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import transferlab as tl
from transferlab.errors import RunError

from .conftest import TINY, make_photo


@pytest.fixture
def trained(photo_folder: Path, tiny_weights: Path, tmp_path: Path):
    ds = tl.load_dataset(photo_folder, val_frac=0.2, test_frac=0.3)
    run = tl.train(ds, backbone=TINY, weights=tiny_weights, out=tmp_path / "run", precision="fp32")
    return ds, run


def test_train_writes_a_complete_run_directory(trained) -> None:
    ds, run = trained
    files = {p.name for p in run.directory.iterdir()}
    assert {"model.safetensors", "model.json", "metrics.json", "confusion_matrix.png", "top_losses.png", "predictions.csv"} <= files
    meta = json.loads((run.directory / "model.json").read_text())
    assert meta["classes"] == ["cat", "dog", "fox"] and meta["strategy"] == "probe"
    assert meta["backbone"]["arch"] == TINY and meta["backbone"]["weights"].startswith("file:")
    assert meta["preprocess"]["input_size"] == list(run.model.preprocess.input_size)
    assert meta["data"]["fingerprint"] == ds.fingerprint() and meta["transferlab_version"] == tl.__version__
    assert meta["hyperparameters"]["chosen_l2"] in meta["hyperparameters"]["l2_grid"]
    assert 0 <= meta["metrics"]["accuracy"] <= 1 and meta["metrics"]["split"] == "test"


def test_colour_coded_classes_are_learned(trained) -> None:
    # Even a random tiny CNN separates these colours: a broken pipeline (labels shuffled, head not
    # copied into the model, wrong rows of the cache) would sit near chance (0.33).
    _, run = trained
    assert run.meta["metrics"]["accuracy"] >= 0.9


def test_save_load_round_trip_predicts_identically(trained, photo_folder: Path) -> None:
    _, run = trained
    paths = sorted(photo_folder.rglob("*.jpg"))
    loaded = tl.load(run.directory)
    assert loaded.classes == run.classes
    a, b = run.predict(paths, k=3), loaded.predict(paths, k=3)
    assert a == b
    assert all(len(r["top"]) == 3 and abs(sum(t["prob"] for t in r["top"]) - 1) < 1e-5 for r in a)


def test_predict_reports_bad_files_in_place(trained, tmp_path: Path, photo_folder: Path) -> None:
    _, run = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    good = next(photo_folder.rglob("*.jpg"))
    out = run.predict([bad, good], k=2)
    assert out[0]["path"] == str(bad) and "error" in out[0]
    assert out[1]["top"][0]["label"] in run.classes


def test_evaluate_writes_metrics_and_plots(trained, tmp_path: Path) -> None:
    ds, run = trained
    result = run.evaluate(ds, "test", tmp_path / "eval")
    assert set(result.files) == {"metrics", "confusion_matrix", "top_losses", "predictions", "calibration"}
    assert json.loads(result.files["metrics"].read_text())["accuracy"] == result.accuracy
    rows = result.files["predictions"].read_text().splitlines()
    assert rows[0].startswith("path,true,predicted") and len(rows) == 1 + len(ds.split("test"))


def test_evaluating_data_with_unknown_classes_names_them(trained, tmp_path: Path) -> None:
    _, run = trained
    other = tmp_path / "other"
    for c, name in enumerate(["cat", "zebra"]):
        for i in range(3):
            make_photo(other / name / f"{i}.jpg", c, seed=i)
    with pytest.raises(RunError, match="zebra"):
        run.evaluate(tl.load_dataset(other))


def test_loading_a_damaged_run_is_a_clear_error(trained, tmp_path: Path) -> None:
    _, run = trained
    (run.directory / "model.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        tl.load(run.directory)
    with pytest.raises(RunError, match="not a transferlab run"):
        tl.load(tmp_path)


def test_same_seed_same_metrics(photo_folder: Path, tiny_weights: Path) -> None:
    runs = [tl.train(tl.load_dataset(photo_folder), backbone=TINY, weights=tiny_weights, precision="fp32") for _ in range(2)]
    assert runs[0].meta["metrics"] == runs[1].meta["metrics"]
    assert np.array_equal(runs[0].model.head.weight.detach().numpy(), runs[1].model.head.weight.detach().numpy())


def test_backbone_alone_predicts_imagenet_names(photo_folder: Path) -> None:
    run = tl.from_backbone("efficientnet_lite0")
    photo = next(photo_folder.rglob("*.jpg"))
    (result,) = run.predict([photo], k=5, precision="fp32")
    assert len(result["top"]) == 5 and len(run.classes) == 1000 and "tabby cat" in run.classes
    # the five most probable ImageNet classes by hand: the softmax of the network's logits on the photo
    with torch.inference_mode():
        want = torch.softmax(run.model(run.load_image(photo)).float(), dim=1)[0].topk(5)
    assert [t["label"] for t in result["top"]] == [run.classes[i] for i in want.indices.tolist()]
    assert [t["prob"] for t in result["top"]] == pytest.approx(want.values.tolist(), abs=1e-4)
    assert result["label"] == result["top"][0]["label"] and result["in_distribution"]  # a bare backbone rejects nothing


def test_open_model_takes_a_run_folder_or_a_backbone_name(trained, tmp_path: Path, photo_folder: Path) -> None:
    _, run = trained
    opened = tl.open_model(run.directory)
    assert opened.classes == run.classes and opened.class_index("dog") == run.classes.index("dog")
    image = opened.load_image(next(photo_folder.rglob("*.jpg")))
    assert image.shape == (1, 3, *run.model.preprocess.input_size) and 0 <= image.min() and image.max() <= 1
    assert len(tl.open_model("efficientnet_lite0").classes) == 1000
    with pytest.raises(RunError, match="no run folder at"):
        tl.open_model(tmp_path / "missing")


def test_predicting_leaves_the_callers_model_as_it_was(trained, tmp_path: Path) -> None:
    # regression: extraction left the network in channels_last and eval mode, and the head was moved alone
    _, run = trained
    new = [make_photo(tmp_path / "new" / f"{i}.jpg", i % 3, seed=900 + i) for i in range(20)]  # not cached yet
    import torch

    run.model.to(memory_format=torch.contiguous_format).train()
    before = {k: (v.dtype, v.device, v.is_contiguous()) for k, v in run.model.state_dict().items()}
    run.predict(new, precision="bf16")  # bf16: the path that converts the most
    assert all(m.training for m in run.model.modules())
    assert {k: (v.dtype, v.device, v.is_contiguous()) for k, v in run.model.state_dict().items()} == before


def test_predict_takes_files_pil_images_and_tensors_alike(trained, photo_folder: Path) -> None:
    from PIL import Image

    _, run = trained
    path = sorted(photo_folder.rglob("*.jpg"))[0]
    with Image.open(path) as im:
        pil = im.convert("RGB")
    view = run.load_image(path)  # (1, 3, H, W) in [0, 1]: the evaluation view, taken as it is
    from_file, from_pil, from_view = run.predict_proba([path, pil, view[0]], precision="fp32")
    assert np.allclose(from_file, from_pil, atol=1e-4) and np.allclose(from_file, from_view, atol=1e-4)
    one = run.predict(pil, k=2)  # one photo without a list: one prediction
    assert one["path"] is None and one["top"][0]["label"] == run.classes[int(np.argmax(from_file))]
    assert len(run.predict(view.repeat(3, 1, 1, 1), k=1)) == 3  # a batch tensor is three photos
    with pytest.raises(tl.InputError, match=r"\[0, 1\]"):
        run.predict_proba(view * 255)
    with pytest.raises(tl.InputError, match="shape"):
        run.predict_proba(view[0, 0])


def test_run_and_the_task_functions_answer_the_notebook_questions(trained, photo_folder: Path, tmp_path: Path) -> None:
    from PIL import Image

    from transferlab.attacks import AttackConfig
    from transferlab.inspect.dream import DreamConfig

    _, run = trained
    path = sorted(photo_folder.rglob("*.jpg"))[0]
    with Image.open(path) as im:
        cam = run.explain(im.convert("RGB"))
    assert cam.class_name in run.classes and cam.heatmap.shape[-2:] == run.load_image(path).shape[-2:]
    d = run.dream("dog", DreamConfig(steps=2, size=32))
    assert d.class_name == "dog" and d.image.shape[-1] == 32
    report = tl.attack(run, path, "fox", config=AttackConfig(eps=8 / 255, steps=3), out=tmp_path / "adv.png")
    assert report.record["target"]["class"] == "fox" and (tmp_path / "adv.png").is_file()
    assert tl.export(run, "torchscript", tmp_path / "m.pt", images=[path]).parity.ok
    assert tl.report(run, tmp_path / "r.html", gradcam_samples=1).is_file()
    assert run.training_data() is not None and len(run.training_data().samples) == 30


def test_the_task_methods_that_moved_to_functions_name_the_function(trained) -> None:
    _, run = trained
    for name in ("attack", "robustness", "export", "report"):
        with pytest.raises(AttributeError, match=rf"transferlab\.{name}\(run, "):
            getattr(run, name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        run.nonsense  # noqa: B018
