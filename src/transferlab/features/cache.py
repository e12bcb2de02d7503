"""On-disk feature cache: pooled features keyed by image content hash, per backbone configuration.

Layout: ``ROOT/features/<key digest>/`` holds ``key.json`` (what the features were computed with) and
shards ``*.safetensors``, each a (N, D) float32 tensor plus, in its metadata, the N content hashes and the
SHA-256 of the tensor's bytes. A shard is written to a temporary file, flushed to disk and renamed into
place, so a reader sees a whole shard or none: an interrupted extraction keeps every shard already written
and never leaves a corrupt one under a real name. A shard damaged some other way (unreadable, or its data
no longer matching its digest) is deleted with a warning and its rows computed again, never served; shards
written before digests existed are trusted as they were (checking them would mean recomputing every
cache). A full disk is a ``StorageError``. Several processes may fill one cache at once; each writes its
own shards, and one at a time merges them (``compact``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from .._io import atomic_write_bytes
from .._lock import writing
from ..data.duplicates import content_hash  # noqa: F401  (re-exported: the key of every entry)
from ..errors import BusyError, InputError

log = logging.getLogger(__name__)

COMPACT_AFTER = 64  # merge small shards once there are this many
SHARD_ROWS = 65_536  # rows a merged shard holds at most (336 MB of 1,280-d float32): a reader holds one shard
# in float32 at a time, never a million rows
DIGEST = "sha256"  # of a shard's tensor bytes: 50 ms for 10,000 x 1,280 float32 (about what reading them costs)


def default_cache_dir() -> Path:
    """``$TRANSFERLAB_CACHE``, else ``~/.cache/transferlab``."""
    env = os.environ.get("TRANSFERLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transferlab"


class FeatureCache:
    """Features of one backbone configuration (``key``: weights + architecture + preprocessing + precision)."""

    def __init__(self, root: Path | str | None, key: dict[str, str]) -> None:
        self.key = dict(key)
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:24]
        self.dir = Path(root if root is not None else default_cache_dir()).expanduser() / "features" / digest
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            atomic_write_bytes(key_file, json.dumps(self.key, indent=2, sort_keys=True).encode())

    def _shards(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.safetensors") if not p.name.startswith("."))

    def _index(self) -> dict[str, tuple[Path, int]]:
        index: dict[str, tuple[Path, int]] = {}
        for shard in self._shards():
            try:
                with safe_open(str(shard), framework="pt") as f:
                    hashes = json.loads(f.metadata()["hashes"])
            except FileNotFoundError:
                continue  # removed by a concurrent compaction; its rows live in the merged shard
            except Exception as err:  # a damaged shard is dropped and recomputed, never trusted
                _drop(shard, f"unreadable: {err}")
                continue
            for row, h in enumerate(hashes):
                index[h] = (shard, row)
        return index

    def get(self, hashes: Iterable[str], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Features of the given hashes that are cached (missing ones are simply absent); with ``dtype``
        (float16 halves a large set), each shard's rows are converted as it is read, so only one shard is
        ever held in float32."""
        index = self._index()
        wanted: dict[Path, list[tuple[str, int]]] = {}
        for h in set(hashes):
            if h in index:
                shard, row = index[h]
                wanted.setdefault(shard, []).append((h, row))
        found: dict[str, torch.Tensor] = {}
        for shard, rows in wanted.items():
            feats = _load(shard)
            if feats is None:  # vanished since indexing, or damaged (dropped): not cached
                continue
            if dtype is None:
                found.update((h, feats[row]) for h, row in rows)
                continue
            picked = feats[torch.tensor([row for _, row in rows])].to(dtype)  # a copy: the float32 shard is freed
            found.update((h, picked[j]) for j, (h, _) in enumerate(rows))
        if len(self._shards()) >= COMPACT_AFTER:
            try:
                self.compact()
            except (OSError, BusyError) as err:  # another process compacts (or just did): try again next time
                log.info("cache compaction skipped (%s)", err)
        return found

    def put(self, hashes: Sequence[str], features: torch.Tensor) -> None:
        """Store one batch as a new shard (atomic)."""
        if len(hashes) != len(features):
            raise InputError(f"expected one feature row per hash, got {len(features)} rows for {len(hashes)} hashes")
        if not hashes:
            return
        self._write(self.dir / f"{uuid.uuid4().hex}.safetensors", list(hashes), features)

    def _write(self, path: Path, hashes: list[str], features: torch.Tensor) -> None:
        """Atomic and fsynced; a full disk raises ``StorageError`` and leaves no partial shard."""
        features = features.detach().float().cpu().contiguous()
        data = save({"features": features}, metadata={"hashes": json.dumps(hashes), DIGEST: _digest(features)})
        atomic_write_bytes(path, data)

    def compact(self) -> None:
        """Merge the shards into as few as hold ``SHARD_ROWS`` rows each, so loading a large cache opens few
        files and never one larger than that (one process at a time: another one compacting at the same
        moment raises ``BusyError``)."""
        with writing(self.dir / "compaction", f"the feature cache {self.dir}"):
            shards = self._shards()
            index = self._index()
            if len(shards) < 2 or not index:
                return
            owned: dict[Path, list[str]] = {}
            for h, (shard, _) in sorted(index.items()):
                owned.setdefault(shard, []).append(h)
            for shard in shards:  # every row it holds is served from another shard
                if shard not in owned:
                    shard.unlink(missing_ok=True)
            small = sorted(shard for shard, hs in owned.items() if len(hs) < SHARD_ROWS)  # full ones stay as they are
            group: list[Path] = []
            hashes: list[str] = []
            rows: list[torch.Tensor] = []
            for shard in small if len(small) > 1 else ():
                if hashes and len(hashes) + len(owned[shard]) > SHARD_ROWS:
                    self._merge(group, hashes, rows)
                    group, hashes, rows = [], [], []
                feats = _load(shard)
                if feats is not None:  # a damaged shard's rows: computed again
                    hashes += owned[shard]
                    rows += [feats[index[h][1]] for h in owned[shard]]
                group.append(shard)
            if group:
                self._merge(group, hashes, rows)

    def _merge(self, shards: list[Path], hashes: list[str], rows: list[torch.Tensor]) -> None:
        """Write ``rows`` as one shard, then delete the ``shards`` they came from."""
        if hashes:
            self._write(self.dir / f"{uuid.uuid4().hex}.safetensors", hashes, torch.stack(rows))
        for shard in shards:
            shard.unlink(missing_ok=True)

    @staticmethod
    def get_rows(index: dict[str, tuple[Path, int]], hashes: list[str]) -> torch.Tensor:
        """The features of ``hashes`` from the shards ``index`` names (each verified).

        Raises:
            FileNotFoundError: a shard vanished or was dropped as damaged since it was indexed.
        """
        by_shard: dict[Path, torch.Tensor | None] = {}
        rows = []
        for h in hashes:
            shard, row = index[h]
            if shard not in by_shard:
                by_shard[shard] = _load(shard)
            feats = by_shard[shard]
            if feats is None:
                raise FileNotFoundError(f"cache shard {shard} is gone")
            rows.append(feats[row])
        return torch.stack(rows)

    def hashes(self) -> set[str]:
        """Content hashes of every cached image."""
        return set(self._index())

    def __len__(self) -> int:
        return len(self._index())



def _digest(features: torch.Tensor) -> str:
    return hashlib.new(DIGEST, features.numpy()).hexdigest()  # (N, D) float32, contiguous: its bytes as stored


def _load(shard: Path) -> torch.Tensor | None:
    """The features of ``shard``, checked against its digest; None if it vanished or was damaged (then dropped)."""
    try:
        with safe_open(str(shard), framework="pt") as f:
            expected = (f.metadata() or {}).get(DIGEST)
            feats = f.get_tensor("features")
    except FileNotFoundError:
        return None  # removed by a concurrent compaction
    except Exception as err:  # truncated, overwritten: safetensors' and the OS's many ways of saying so
        _drop(shard, f"unreadable: {err}")
        return None
    if expected is not None and _digest(feats.contiguous()) != expected:
        _drop(shard, f"its features differ from their {DIGEST} digest")
        return None
    return feats


def _drop(shard: Path, why: str) -> None:
    """Delete a damaged shard: its rows are computed again (a cache holds nothing that cannot be)."""
    try:
        shard.unlink(missing_ok=True)
    except OSError as err:  # a cache on a read-only share: skipped all the same
        log.warning("ignoring the damaged feature-cache shard %s (%s; cannot delete it: %s)", shard, why, err)
        return
    log.warning("deleted the damaged feature-cache shard %s (%s); its images will be computed again", shard, why)
