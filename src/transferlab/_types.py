"""Types shared across the package: progress callbacks (the library itself never prints), and typed records that
still read as the dicts 0.1 returned."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Progress = Callable[[str, int, int], None]  # (stage, done, total), e.g. ("features", 128, 600)
CountProgress = Callable[[int, int], None]  # (done, total) of one stage: images, files or bytes


class AsMapping(Mapping[str, Any]):
    """A read-only mapping over ``to_dict()``, for typed results and records that 0.1 handed out as dicts
    (a prediction's label, a record section's fields), so code indexing them by key keeps working."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
