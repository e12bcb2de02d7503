"""One photo attacked through the public API: the saved PNG is itself adversarial, the report says so."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

import transferlab as tl
from transferlab.attacks.single import attack_image, transfer

from .conftest import grid_images, tiny_classifier, with_threshold


def png_pixels(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def test_saved_png_is_the_adversarial_and_stays_adversarial(tiny_run, pet_photos, tmp_path) -> None:
    photo = pet_photos / "dog" / "dog_0.jpg"
    config = tl.AttackConfig(eps=16 / 255, steps=20)
    report = tl.attack(tiny_run, photo, "fox", config=config, out=tmp_path / "adv.png")
    assert report.success and report.record["adversarial"]["class"] == "fox"
    reread = png_pixels(tmp_path / "adv.png")
    assert torch.equal(reread, report.adversarial)  # lossless, on the 8-bit grid
    original = png_pixels(photo)
    assert reread.shape == original.shape  # the whole photo at its own size, not the model's crop
    assert ((reread - original) * 255).round().abs().max() <= 16
    # regression: the saved file was the 224-px crop, which `predict` resized and cropped again
    assert tiny_run.predict([tmp_path / "adv.png"], k=1)[0]["top"][0]["label"] == "fox"
    assert report.record["judged_by"] == "transferlab predict on the saved PNG"


def test_report_json_and_figure(tiny_run, pet_photos, tmp_path) -> None:
    report = tl.attack(tiny_run, pet_photos / "cat" / "cat_1.jpg", config=tl.AttackConfig(eps=8 / 255), out=tmp_path / "a" / "x.png")
    files = {k: v.name for k, v in report.files.items()}
    assert files == {"adversarial": "x.png", "figure": "x_figure.png", "report": "x.json"}
    record = json.loads((tmp_path / "a" / "x.json").read_text())
    for key in ("original", "adversarial", "success", "linf", "l2", "psnr_db", "ssim", "steps", "seconds", "top5_before", "top5_after", "config"):
        assert key in record, key
    assert record["targeted"] is False and record["label"]["class"] == record["original"]["class"]  # away from the prediction
    assert record["linf_255"] <= 8 and 0 < record["ssim"] <= 1 and record["psnr_db"] > 20
    assert Image.open(tmp_path / "a" / "x_figure.png").size[0] > 600


def test_transfer_to_another_model_reports_each() -> None:
    source, other = tiny_classifier(seed=0), tiny_classifier(seed=1)
    report = attack_image(source, grid_images(1)[0], tl.AttackConfig(eps=16 / 255), target=2)
    out = transfer(other, report, "other")
    assert out["model"] == "other" and set(out) >= {"original", "adversarial", "fooled", "target_prob"}
    assert out["fooled"] == (out["adversarial"]["class"] == "fox")


def test_unknown_target_class_is_a_one_line_error(tiny_run, pet_photos) -> None:
    with pytest.raises(tl.TransferlabError, match="unknown class"):
        tl.attack(tiny_run, pet_photos / "cat" / "cat_1.jpg", "zebra")


@pytest.mark.parametrize("flagged", [False, True])
def test_the_report_says_when_predict_answers_none_of_these(tiny_run, pet_photos, tmp_path, flagged: bool) -> None:
    run = with_threshold(tiny_run, math.inf if flagged else -math.inf)
    report = tl.attack(run, pet_photos / "dog" / "dog_0.jpg", "fox", config=tl.AttackConfig(eps=16 / 255, steps=20), out=tmp_path / "adv.png")
    assert report.success  # the top class is fooled either way
    said = run.predict([tmp_path / "adv.png"], k=1)[0]
    assert report.record["predict"]["in_distribution"] is said["in_distribution"] is (not flagged)
    assert report.record["predict"]["label"] == said["label"] == (None if flagged else "fox")
    console = Console(record=True, width=400)
    console.print(report)
    assert ("answers 'none of these'" in console.export_text()) is flagged
