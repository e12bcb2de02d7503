"""On-disk feature cache: pooled features keyed by image content hash, per backbone configuration.

Layout: ``ROOT/features/<key digest>/`` holds ``key.json`` (what the features were computed with) and
shards ``*.safetensors``, each a (N, D) float32 tensor plus the N content hashes in its metadata. A shard is
written to a temporary file, flushed to disk and renamed into place, so a reader sees a whole shard or none:
an interrupted extraction keeps every shard already written and never leaves a corrupt one under a real
name (a shard damaged some other way is ignored and recomputed). A full disk is a ``StorageError``. Several
processes may fill one cache at once; each writes its own shards.
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
from ..data.duplicates import content_hash  # noqa: F401  (re-exported: the key of every entry)
from ..errors import InputError

log = logging.getLogger(__name__)

COMPACT_AFTER = 64  # merge small shards once there are this many


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
            except Exception as err:  # a damaged shard is ignored and recomputed, never trusted
                log.warning("ignoring unreadable cache shard %s (%s)", shard, err)
                continue
            for row, h in enumerate(hashes):
                index[h] = (shard, row)
        return index

    def get(self, hashes: Iterable[str]) -> dict[str, torch.Tensor]:
        """Features of the given hashes that are cached (missing ones are simply absent)."""
        index = self._index()
        wanted: dict[Path, list[tuple[str, int]]] = {}
        for h in set(hashes):
            if h in index:
                shard, row = index[h]
                wanted.setdefault(shard, []).append((h, row))
        found: dict[str, torch.Tensor] = {}
        for shard, rows in wanted.items():
            try:
                with safe_open(str(shard), framework="pt") as f:
                    feats = f.get_tensor("features")
            except Exception as err:  # vanished or damaged since indexing: treat as not cached
                log.warning("ignoring cache shard %s (%s)", shard, err)
                continue
            for h, row in rows:
                found[h] = feats[row]
        if len(self._shards()) >= COMPACT_AFTER:
            try:
                self.compact()
            except OSError as err:  # a concurrent compaction removed a shard first; try again next time
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
        data = save({"features": features.detach().float().cpu().contiguous()}, metadata={"hashes": json.dumps(hashes)})
        atomic_write_bytes(path, data)

    def compact(self) -> None:
        """Merge all shards into one, so loading a large cache opens few files."""
        shards = self._shards()
        index = self._index()
        if len(shards) < 2 or not index:
            return
        hashes = sorted(index)
        feats = self.get_rows(index, hashes)
        self._write(self.dir / f"{uuid.uuid4().hex}.safetensors", hashes, feats)
        for shard in shards:
            shard.unlink(missing_ok=True)

    @staticmethod
    def get_rows(index: dict[str, tuple[Path, int]], hashes: list[str]) -> torch.Tensor:
        by_shard: dict[Path, torch.Tensor] = {}
        rows = []
        for h in hashes:
            shard, row = index[h]
            if shard not in by_shard:
                with safe_open(str(shard), framework="pt") as f:
                    by_shard[shard] = f.get_tensor("features")
            rows.append(by_shard[shard][row])
        return torch.stack(rows)

    def hashes(self) -> set[str]:
        """Content hashes of every cached image."""
        return set(self._index())

    def __len__(self) -> int:
        return len(self._index())

