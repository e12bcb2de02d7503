"""Grad-CAM maps and the pointing-game scorer, on hand-made cases with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import transferlab as tl
from transferlab.data.oxford import read_head_boxes, read_trimap
from transferlab.tasks.explain import score_explanations
from transferlab.inspect.gradcam import gradcam
from transferlab.inspect.pointing import hit_rate, in_boxes, in_mask, to_photo
from transferlab.models import ImageClassifier


def _red_square(top: int, left: int, size: int = 8) -> torch.Tensor:
    image = torch.full((1, 3, 32, 32), 0.2)
    image[0, 0, top : top + size, left : left + size] = 1.0
    return image


def test_gradcam_peaks_where_the_evidence_is(red_detector: ImageClassifier) -> None:
    cam = gradcam(red_detector, _red_square(20, 4))
    assert cam.class_name == "red thing" and cam.layer == "act" and cam.probability > 1 / 3
    assert cam.heatmap.shape == (32, 32) and cam.heatmap.min() >= 0 and cam.heatmap.max() == pytest.approx(1.0, abs=1e-4)
    row, col = cam.peak()
    assert 20 <= row < 28 and 4 <= col < 12
    blue = gradcam(red_detector, _red_square(20, 4), target="blue thing")
    assert blue.class_index == 1 and float(blue.heatmap[24, 8]) < 0.5  # red square is evidence *against* blue
    assert cam.overlay().size == (32, 32)


def test_gradcam_leaves_the_model_untouched(tiny_run: tl.Run) -> None:
    model = tiny_run.model.train()
    cam = gradcam(model, torch.rand(1, 3, 64, 64), target="goldfish")
    assert cam.class_index == 1 and cam.heatmap.shape == (64, 64) and cam.coarse.shape == (2, 2)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_gradcam_matches_the_grad_cam_package(colour_run: tl.Run) -> None:
    """Reference: pytorch-grad-cam (jacobgil), whose interpolation is OpenCV's, so equal to ~1e-2."""
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = colour_run.model
    torch.manual_seed(0)
    image = torch.rand(1, 3, 96, 96)
    ours = gradcam(model, image, target="fox", layer="blocks.2")
    try:
        with pytorch_grad_cam.GradCAM(model, [model.net.get_submodule("blocks.2")]) as reference:
            theirs = reference(image, [ClassifierOutputTarget(2)])[0]
    finally:
        model.zero_grad(set_to_none=True)  # the package leaves gradients on the weights; ours does not
    assert ours.coarse.max() > 1e-3  # a real map, not one the package's 1e-7 epsilon would distort
    assert np.abs(theirs - ours.heatmap.numpy()).max() < 0.02


def test_pointing_geometry_on_hand_made_cases() -> None:
    # a 400 x 300 photo whose centre 300 x 300 square the model sees at 100 x 100
    assert to_photo((0, 0), (100, 100), (50.0, 0.0, 350.0, 300.0)) == (51.5, 1.5)
    assert to_photo((99, 50), (100, 100), (50.0, 0.0, 350.0, 300.0)) == (201.5, 298.5)
    mask = np.zeros((300, 400), dtype=bool)
    mask[100:200, 150:250] = True
    assert in_mask((150.0, 100.0), mask) and in_mask((249.9, 199.9), mask)
    assert not in_mask((250.0, 150.0), mask) and not in_mask((-1.0, 150.0), mask) and not in_mask((10.0, 999.0), mask)
    boxes = [(10.0, 10.0, 20.0, 20.0), (100.0, 0.0, 110.0, 5.0)]
    assert in_boxes((20.0, 10.0), boxes) and in_boxes((105.0, 2.0), boxes) and not in_boxes((50.0, 50.0), boxes)
    assert hit_rate([True, False, True, True]) == 0.75 and hit_rate([]) is None


def _oxford_folder(root: Path) -> Path:
    """Three 64 x 48 "photos" with a red patch: two on the pet and head, one with the pet elsewhere."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "annotations" / "xmls").mkdir(parents=True)
    cases = {"Cat_1": (8, 8, True), "Cat_2": (30, 20, True), "dog_3": (8, 40, False)}  # name: red patch top, left, on pet
    for name, (top, left, on_pet) in cases.items():
        photo = np.full((48, 64, 3), 50, dtype=np.uint8)
        photo[top : top + 12, left : left + 12, 0] = 255
        Image.fromarray(photo).save(root / "images" / f"{name}.jpg", quality=95)
        trimap = np.full((48, 64), 2, dtype=np.uint8)
        pt, pl = (top, left) if on_pet else (30, 2)  # the pet: 12 x 12 at the patch, or far from it
        trimap[pt : pt + 12, pl : pl + 12] = 1
        trimap[pt - 1, pl : pl + 12] = 3
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
        if name != "dog_3":  # like Oxford's test images: not every photo has a head box
            box = f"<xmin>{pl}</xmin><ymin>{pt}</ymin><xmax>{pl + 12}</xmax><ymax>{pt + 12}</ymax>"
            (root / "annotations" / "xmls" / f"{name}.xml").write_text(f"<annotation><object><name>cat</name><bndbox>{box}</bndbox></object></annotation>")
    (root / "annotations" / "test.txt").write_text("Cat_1 1 1 1\nCat_2 1 1 2\ndog_3 2 2 1\n")
    return root


def test_pointing_game_scores_a_hand_made_oxford_folder(red_detector: ImageClassifier, tmp_path: Path) -> None:
    root = _oxford_folder(tmp_path / "oxford")
    assert read_head_boxes(root, "Cat_1") == [(8.0, 8.0, 20.0, 20.0)] and read_head_boxes(root, "dog_3") is None
    assert read_trimap(root, "Cat_2").shape == (48, 64)
    run = tl.Run(red_detector, {"backbone": {"name": "red"}})
    score = score_explanations(run, root, "test")
    assert score.n == 3 and score.in_pet == pytest.approx(2 / 3)  # the dog's pet is away from the red patch
    assert score.n_head == 2 and score.in_head == 1.0
    assert [row["in_pet"] for row in score.images] == [True, True, False]
    assert score.centre_in_pet == 0.0 and score.centre_in_head == 0.0  # nothing sits at the centre
    with pytest.raises(tl.DataError, match="trainval.txt"):
        score_explanations(run, root, "trainval")
