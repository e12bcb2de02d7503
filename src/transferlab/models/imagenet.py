"""ImageNet-1k class names, for predicting with a backbone's own head."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

def _common_name(description: str) -> str:
    # Synonyms come most common first ("tabby, tabby cat"); a later one that spells the first out
    # in full ("tabby cat") reads better.
    first, *rest = description.split(", ")
    for name in rest:
        if name.startswith(first + " ") and name.count(" ") == 1:
            return name
    return first


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in index order, unique, e.g. 281 -> "tabby cat"."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [_common_name(info.index_to_description(i)) for i in range(1000)]
    counts = Counter(names)
    return [f"{n} ({i})" if counts[n] > 1 else n for i, n in enumerate(names)]
