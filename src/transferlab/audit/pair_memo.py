"""Pixel verdicts on candidate pairs, kept between runs by the files' content: a warm `evaluate` (and so a
warm `train`) decodes no pair of photos it has already compared.

The near-copy search proposes pairs by their features and confirms each by decoding both files
(``pixels.verify``: milliseconds a pair, but a run over many similar photos proposes tens of thousands).
The agreement depends only on the two files' bytes and the verifier's settings, so it is kept under the
content hashes of the two files (order-free) in ``ROOT/pairs.json``. Advisory like the file index: a damaged,
foreign or other-version file is ignored and rebuilt; at most ``MAX_PAIRS`` verdicts are kept, the newest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .._io import atomic_write_bytes
from ..data.file_index import default_index_root
from . import pixels

VERSION = f"pairs-v1-{pixels.SIZE}-{pixels.BLUR}-{','.join(map(str, pixels.CROPS))}"  # a verifier change starts afresh
MAX_PAIRS = 500_000  # about 40 MB of JSON


class PairMemo:
    """Pixel agreement of pairs of files by content hash; ``save`` writes what was added."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.file = (Path(root).expanduser() if root is not None else default_index_root()) / "pairs.json"
        self._pairs: dict[str, float] | None = None
        self._changed = False

    @staticmethod
    def _key(a: str, b: str) -> str:
        return f"{min(a, b)}:{max(a, b)}"

    def _load(self) -> dict[str, float]:
        if self._pairs is None:
            self._pairs = {}
            try:
                head, body = self.file.read_bytes().split(b"\n", 1)
                header = json.loads(head)
                if header.get("version") == VERSION and header.get("digest") == hashlib.blake2b(body, digest_size=16).hexdigest():
                    pairs = json.loads(body)
                    self._pairs = pairs if isinstance(pairs, dict) else {}
            except (OSError, ValueError, AttributeError):
                pass
        return self._pairs

    def get(self, a: str, b: str) -> float | None:
        value = self._load().get(self._key(a, b))
        return float(value) if isinstance(value, (int, float)) else None

    def put(self, a: str, b: str, agreement: float) -> None:
        pairs = self._load()
        key = self._key(a, b)
        pairs.pop(key, None)  # re-inserted: the newest stay when the memo is trimmed
        pairs[key] = round(float(agreement), 6)
        self._changed = True

    def save(self) -> None:
        if not self._changed or self._pairs is None:
            return
        kept = dict(list(self._pairs.items())[-MAX_PAIRS:])
        body = json.dumps(kept, separators=(",", ":")).encode()
        header = {"version": VERSION, "digest": hashlib.blake2b(body, digest_size=16).hexdigest()}
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.file, json.dumps(header).encode() + b"\n" + body)
        except OSError:
            pass  # advisory: a memo that cannot be written costs the next run the decoding, nothing else
        self._changed = False
