"""Grad-CAM for a run or backbone on photo files, and its pointing-game score on Oxford-IIIT Pet annotations.

The heat map itself is ``inspect.gradcam`` (pixels in, map out); this module adds what needs files and
datasets: reading photos, and checking the peaks against the trimaps (is it on the pet?) and the head
boxes (is it on the head?) of an Oxford-layout folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import open_rgb
from ..data.oxford import TRIMAP_BORDER, TRIMAP_PET, read_head_boxes, read_trimap, split_names
from ..errors import DataError
from ..inspect.gradcam import CAM, gradcam
from ..inspect.pointing import hit_rate, in_boxes, in_mask, to_photo
from ..run.run import Run


def explain(run: Run, path: Path | str, target: int | str | None = None, layer: str | None = None) -> CAM:
    """Grad-CAM of ``target`` (default: the predicted class) on the photo at ``path``, as the model sees it."""
    return gradcam(run.model, run.load_image(path), target, layer)


@dataclass
class PointingScore:
    """Where Grad-CAM's peak falls on annotated Oxford photos, with the centre-of-view baseline.

    ``in_pet``: share of images whose peak is on a trimap pet pixel (the unclassified border counts as
    outside; ``in_pet_or_border`` counts it in). ``in_head``: share of images with a head box whose peak
    is inside one (``n_head`` such images; the Oxford set has boxes for trainval only).
    ``centre_*``: the same for a "heat map" that always peaks at the centre of the view.
    """

    split: str
    n: int
    in_pet: float | None
    in_pet_or_border: float | None
    n_head: int
    in_head: float | None
    centre_in_pet: float | None
    centre_in_head: float | None
    layer: str
    seconds: float
    images: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "images"}


def score_explanations(
    run: Run, root: Path | str, split: str = "test", *, layer: str | None = None, limit: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PointingScore:
    """Grad-CAM (predicted class) on every image of ``split`` of an Oxford-layout folder, scored by the pointing game.

    Raises:
        DataError: ``root`` is not an Oxford-layout folder, or no image of the split has a trimap.
    """
    root = Path(root)
    names = split_names(root, split)[:limit]
    started = time.perf_counter()
    pet, pet_border, head, centre_pet, centre_head, rows = [], [], [], [], [], []
    used_layer = layer
    for done, name in enumerate(names):
        if progress:
            progress("images", done, len(names))
        trimap, boxes = read_trimap(root, name), read_head_boxes(root, name)
        file = root / "images" / f"{name}.jpg"
        if trimap is None or not file.is_file():
            continue
        photo = open_rgb(file)
        cam = gradcam(run.model, run.model.preprocess.to_tensor(photo).unsqueeze(0), None, used_layer)
        used_layer = cam.layer  # found once, reused
        box = run.model.preprocess.crop_box(*photo.size)
        view = tuple(cam.heatmap.shape)
        peak = to_photo(cam.peak(), view, box)
        centre = to_photo((view[0] // 2, view[1] // 2), view, box)
        row = {"image": name, "class": cam.class_name, "prob": round(cam.probability, 4), "peak_xy": [round(v, 1) for v in peak]}
        row["in_pet"] = in_mask(peak, trimap == TRIMAP_PET)
        pet.append(row["in_pet"])
        pet_border.append(in_mask(peak, (trimap == TRIMAP_PET) | (trimap == TRIMAP_BORDER)))
        centre_pet.append(in_mask(centre, trimap == TRIMAP_PET))
        if boxes:
            row["in_head"] = in_boxes(peak, boxes)
            head.append(row["in_head"])
            centre_head.append(in_boxes(centre, boxes))
        rows.append(row)
    if progress:
        progress("images", len(names), len(names))
    if not rows:
        raise DataError(f"no image of the {split} split of {root} has a trimap in annotations/trimaps/ — expected the Oxford-IIIT Pet layout")
    return PointingScore(
        split, len(rows), hit_rate(pet), hit_rate(pet_border), len(head), hit_rate(head), hit_rate(centre_pet),
        hit_rate(centre_head), str(used_layer), time.perf_counter() - started, rows,
    )
