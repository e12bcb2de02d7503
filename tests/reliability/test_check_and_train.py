"""The demonstration the issue asks for: `transferlab check` on a folder holding every bad input at once
(plus good photos) exits 1 and lists each bad file once with its reason; `train` on the same folder
succeeds on the good ones. Both run as a user would run them: the real command in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import transferlab as tl
from transferlab._io import display_path

from ..conftest import TINY, make_photo
from .conftest import run_cli, unprivileged_prefix
from .zoo import CASES

pytestmark = pytest.mark.reliability

CLASSES = ("cat", "dog", "fox")


def build_zoo(root: Path, with_unreadable: bool) -> tuple[dict[Path, str], dict[Path, str], list[Path]]:
    """Good photos in 3 classes, every case of ``zoo.CASES`` spread over them, an empty class folder,
    a one-image class and exact duplicates. Returns (bad file -> expected reason, warned -> expected,
    files that must be used)."""
    good = [make_photo(root / name / f"{name} {i}.jpg", c, seed=10 * c + i) for c, name in enumerate(CLASSES) for i in range(8)]
    bad: dict[Path, str] = {}
    warned: dict[Path, str] = {}
    for k, case in enumerate(CASES):
        if case.unprivileged and not with_unreadable:
            continue
        files = case.make(root / CLASSES[k % 3])
        if case.kind == "skipped":
            bad.update(dict.fromkeys(files, case.expect))
        elif case.kind == "warned":
            warned.update(dict.fromkeys(files, case.expect))
            good += files
        elif case.kind == "decoded":
            good += files
    (root / "empty class").mkdir()
    lonely = make_photo(root / "lonely" / "only one.jpg", 5, seed=99)
    bad[lonely] = "left out with its class 'lonely'"
    warned[root / "empty class"] = "has no image files"
    warned[root / "lonely"] = "1 usable image"
    for i in range(4):  # copies of one photo: the seeded split puts some in different splits (leakage)
        good.append(root / "dog" / f"copy {i}.jpg")
        good[-1].write_bytes((root / "dog" / "dog 0.jpg").read_bytes())
    return bad, warned, good


def tree_digest(root: Path) -> str:
    """Names, modes and bytes of everything under ``root`` (links not followed): proves nothing was touched."""
    digest = hashlib.sha256()
    for current, dirs, files in sorted(os.walk(root)):
        for name in sorted(dirs + files):
            path = Path(current) / name
            st = path.lstat()
            digest.update(os.fsencode(path) + str(st.st_mode).encode())
            if path.is_file() and not path.is_symlink() and os.access(path, os.R_OK):
                digest.update(path.read_bytes())
    return digest.hexdigest()


def test_check_lists_every_bad_file_once_and_train_uses_the_good_ones(tmp_path: Path, tiny_weights: Path, reliability) -> None:
    prefix = unprivileged_prefix()
    root = tmp_path / "photos"
    bad, warned, good = build_zoo(root, with_unreadable=prefix is not None)
    before = tree_digest(root)

    fix_list = tmp_path / "bad-files.txt"
    done = run_cli("check", root, "--fix-list", fix_list, prefix=prefix)
    out = done.stdout.decode()
    assert done.returncode == 1, done.stderr.decode()
    skipped_part, _, warnings_part = out.partition(" warning(s):")
    lines = [line.strip() for line in skipped_part.splitlines() if line.startswith("  ")]
    for path, reason in bad.items():
        matching = [line for line in lines if line.startswith(display_path(path) + ": ")]
        assert len(matching) == 1 and reason in matching[0], (path, matching)
    assert len(lines) == len(bad) and f"{len(bad)} skipped file(s):" in out  # good files are never in the skipped list
    for path, reason in warned.items():
        assert any(line.strip().startswith(display_path(path) + ": ") and reason in line for line in warnings_part.splitlines()), path
    listed = {Path(os.fsdecode(line)) for line in fix_list.read_bytes().splitlines()}
    assert listed == set(bad)  # exactly the bad files, non-UTF-8 names byte for byte
    assert tree_digest(root) == before, "check must never touch the data"

    run_dir = tmp_path / "run"
    done = run_cli("train", root, "-b", TINY, "--weights", tiny_weights, "--out", run_dir, "--fp32", "--json",
                   "--cache-dir", tmp_path / "cache", prefix=prefix)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    summary = json.loads(done.stdout)
    assert {Path(s["path"]) for s in summary["skipped"]} == set(bad)
    assert any("leakage" in w["reason"] for w in summary["warnings"])
    run = tl.load(run_dir)
    counts = run.meta["data"]["counts"]
    assert run.classes == list(CLASSES) and sum(sum(c.values()) for c in counts.values()) == len(good)
    assert tree_digest(root) == before, "train must never touch the data"

    n_cases = sum(1 for c in CASES if not c.unprivileged or prefix is not None)
    reliability(
        "Bad input (files)", f"all {n_cases} file cases + empty class + one-image class + duplicates in one folder",
        f"`check`: exit 1, each of the {len(bad)} bad files listed once with its reason, --fix-list = exactly those, data "
        f"untouched; `train`: exit 0 on the {len(good)} good files, report lists the same {len(bad)} skipped files",
        cases=len(bad) + len(warned) + len(good),
    )
