"""Datasets of labelled image files: layouts (folder, Oxford-IIIT Pet, PetImages), decoding, splits.

    ds = load_dataset("photos/")          # header check only: fast
    ds.split("train"), ds.counts(), ds.skipped
    ds = check_dataset("photos/")         # decodes every file
    image = open_rgb(path)                # upright 8-bit RGB, transparency on white
"""

from .check import check_dataset
from .dataset import Dataset, Sample, Skipped
from .decode import IMAGE_EXTENSIONS, BadImageError, open_rgb, sniff
from .layouts import LAYOUTS
from .load import LABELS, load_dataset
from .splits import SPLITS, stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "LABELS",
    "LAYOUTS",
    "SPLITS",
    "BadImageError",
    "Dataset",
    "Sample",
    "Skipped",
    "check_dataset",
    "load_dataset",
    "open_rgb",
    "sniff",
    "stratified_split",
]
