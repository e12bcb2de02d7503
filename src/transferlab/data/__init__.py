"""Datasets of labelled image files: layouts (folder, Oxford-IIIT Pet, PetImages), decoding, splits.

    ds = load_dataset("photos/")          # header check only: fast
    ds.split("train"), ds.counts(), ds.skipped, ds.warnings
    ds = check_dataset("photos/")         # decodes every file, finds train/test duplicates
    image = open_rgb(path)                # upright 8-bit RGB, transparency on white
"""

from .check import check_dataset, write_fix_list
from .dataset import Dataset, Sample, Skipped, Warned
from .decode import IMAGE_EXTENSIONS, MAX_PIXELS, MIN_SIDE, BadImageError, open_rgb, sniff
from .duplicates import content_hash, find_leaks
from .layouts import LAYOUTS
from .load import LABELS, load_dataset, load_recorded
from .splits import SPLITS, stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "LABELS",
    "LAYOUTS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "SPLITS",
    "BadImageError",
    "Dataset",
    "Sample",
    "Skipped",
    "Warned",
    "check_dataset",
    "content_hash",
    "find_leaks",
    "load_dataset",
    "load_recorded",
    "open_rgb",
    "sniff",
    "stratified_split",
    "write_fix_list",
]
