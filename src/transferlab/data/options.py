"""How a data folder is read and split, as one dataclass: the keyword arguments of ``load_dataset`` and
``check_dataset``, and the data flags of every command that reads a data folder (built from the help here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .._options import option

# load.py's and layouts.py's names, here without their imports (the command line reads this module; a test keeps them equal)
LAYOUTS = ("folder", "oxford", "petimages")
LABELS = ("breed", "species")


@dataclass(frozen=True)
class LoadOptions:
    """Layout, label kind and the seeded split used when the data brings none."""

    layout: str = option("auto", "How DATA is laid out (auto: detected).", choices=("auto", *LAYOUTS))
    label: str = option("breed", "Oxford-IIIT Pet: classify breeds (37) or species (2).", choices=LABELS)
    val_frac: float = option(0.1, "Validation share when the data has no split.")
    test_frac: float = option(0.2, "Test share when the data has no split.")
    seed: int = option(0, "Seed of the split when the data has none (train: of training too).")

    def kwargs(self) -> dict[str, Any]:
        """``load_dataset(path, **options.kwargs())``."""
        return asdict(self)
