"""Each bad input on its own, next to good photos: one clear line for it, everything else used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import transferlab as tl
from transferlab.data import check_dataset, open_rgb

from ..conftest import TINY, make_photo
from .conftest import env_with_src, unprivileged_prefix
from .zoo import CASES, Case

pytestmark = pytest.mark.reliability

SUMMARY = """
import json, sys
from transferlab.data import check_dataset
ds = check_dataset(sys.argv[1])
print(json.dumps({"samples": [str(s.path) for s in ds.samples], "classes": ds.classes,
                  "skipped": [[str(s.path), s.reason] for s in ds.skipped],
                  "warnings": [[str(w.path), w.reason] for w in ds.warnings]}))
"""


def good_photos(root: Path, classes: tuple[str, ...] = ("a", "b"), n: int = 4, seed: int = 0) -> list[Path]:
    return [make_photo(root / name / f"{name}{i}.jpg", c, seed=seed + 10 * c + i) for c, name in enumerate(classes) for i in range(n)]


def summarize(root: Path, prefix: list[str]) -> dict:
    """``check_dataset`` as JSON-able lists; in a subprocess under ``prefix`` when one is needed."""
    if prefix:
        done = subprocess.run([*prefix, sys.executable, "-c", SUMMARY, str(root)], capture_output=True, env=env_with_src(), check=True)
        return json.loads(done.stdout)
    ds = check_dataset(root)
    return {
        "samples": [str(s.path) for s in ds.samples], "classes": ds.classes,
        "skipped": [[str(s.path), s.reason] for s in ds.skipped], "warnings": [[str(w.path), w.reason] for w in ds.warnings],
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_input_gets_one_clear_line_and_the_good_photos_are_used(case: Case, tmp_path: Path, reliability) -> None:
    root = tmp_path / "data"
    good = good_photos(root)
    files = case.make(root / "a")
    prefix: list[str] = []
    if case.unprivileged:
        found = unprivileged_prefix()
        if found is None:
            pytest.skip("no way to drop root's file-permission override here (setpriv missing)")
        prefix = found
    got = summarize(root, prefix)
    skipped, warnings = dict(got["skipped"]), dict(got["warnings"])
    listed = [p for p, _ in got["skipped"]]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert all("\n" not in r and "Traceback" not in r for r in [*skipped.values(), *warnings.values()])
    assert {str(p) for p in good} <= set(got["samples"]) and got["classes"] == ["a", "b"]

    if case.kind == "skipped":
        reasons = [skipped.get(str(f), "") for f in files]
        assert all(case.expect in r for r in reasons), reasons
        assert len(got["samples"]) == len(good)
        outcome = f"skipped, listed once: \u201c{reasons[0]}\u201d; the {len(good)} good photos used"
    elif case.kind == "warned":
        assert str(files[0]) in got["samples"] and case.expect in warnings[str(files[0])]
        outcome = f"used, with a warning: \u201c{warnings[str(files[0])]}\u201d"
    elif case.kind == "decoded":
        assert str(files[0]) in got["samples"] and not skipped
        image = open_rgb(files[0])
        mean = np.asarray(image, dtype=float).reshape(-1, 3).mean(0)
        assert np.abs(mean - case.colour).max() <= case.tolerance, (mean, case.colour)
        if case.expect == "upright":
            assert image.size == (40, 48)  # stored 48x40 with EXIF orientation 6
        outcome = f"decoded correctly ({image.size[0]}x{image.size[1]} RGB, mean colour within {case.tolerance:g} of the original)"
    else:
        assert not ({str(f) for f in files} & (set(got["samples"]) | set(skipped) | set(warnings)))
        assert sorted(got["samples"]) == sorted(str(p) for p in good)
        outcome = "ignored: neither used nor listed"
    reliability("Bad input (files)", case.name, outcome, cases=len(files))


def test_decompression_bomb_is_refused_before_any_pixel_is_decoded(tmp_path: Path, monkeypatch, reliability) -> None:
    from PIL import ImageFile

    from .zoo import png_bomb

    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(10_000, 10_000))  # 100 M pixels: over our limit, under Pillow's own error threshold
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.warns(Warning):  # Pillow's DecompressionBombWarning, emitted by its header check
        with pytest.raises(tl.DataError, match="refused unread as a possible decompression bomb") as info:
            open_rgb(path)
    reliability("Bad input (files)", "decompression bomb of 100 M pixels (between our limit and Pillow's own error)", f"refused from the header: \u201c{info.value.reason}\u201d")


# -- dataset level -------------------------------------------------------------------------------------
def test_empty_class_folder_and_class_with_one_image_are_left_out_with_warnings(tmp_path: Path, tiny_weights: Path, reliability) -> None:
    root = tmp_path / "data"
    good_photos(root, ("a", "b", "c"))
    (root / "empty").mkdir()
    make_photo(root / "lonely" / "only.jpg", 5, seed=1)
    ds = check_dataset(root)
    warnings = {w.path.name: w.reason for w in ds.warnings}
    assert ds.classes == ["a", "b", "c"] and len(ds.samples) == 12
    assert warnings == {
        "empty": "class 'empty' has no image files: left out",
        "lonely": "class 'lonely' has 1 usable image (2 or more needed): left out",
    }
    run = tl.train(ds, TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache")
    assert run.classes == ["a", "b", "c"]
    reliability("Bad input (dataset)", "empty class folder", f"left out with a warning: \u201c{warnings['empty']}\u201d; training on the other classes")
    reliability("Bad input (dataset)", "class with one image", f"left out with a warning: \u201c{warnings['lonely']}\u201d; training on the other classes")


def test_a_single_class_is_a_clear_error(tmp_path: Path, reliability) -> None:
    good_photos(tmp_path / "data", ("only",))
    with pytest.raises(tl.DataError) as info:
        check_dataset(tmp_path / "data")
    message = str(info.value)
    assert "expected at least 2 classes" in message and "(only)" in message and "\n" not in message
    reliability("Bad input (dataset)", "a single class", f"clear error: \u201c{message.split(' in ')[0]} … {message.split(' — ')[-1]}\u201d")


def test_the_same_image_in_train_and_test_is_warned_with_the_pairs(tmp_path: Path, tiny_weights: Path, reliability) -> None:
    root = tmp_path / "data"
    for k, split in enumerate(("train", "test")):
        good_photos(root / split, ("a", "b"), seed=1000 * k)
    leaked = (root / "train" / "a" / "a0.jpg").read_bytes()
    (root / "test" / "a" / "copy of a0.jpg").write_bytes(leaked)
    (root / "test" / "b" / "another copy.jpg").write_bytes(leaked)  # same photo under another class too
    ds = check_dataset(root)
    leaks = {w.path.relative_to(root).as_posix(): w.reason for w in ds.warnings if "leakage" in w.reason}
    assert leaks == {
        "test/a/copy of a0.jpg": "same bytes as train/a/a0.jpg (train): train/test leakage",
        "test/b/another copy.jpg": "same bytes as train/a/a0.jpg (train): train/test leakage",
    }
    run = tl.train(ds, TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache")
    recorded = {Path(w["path"]).name for w in run.meta["data"]["warnings"] if "leakage" in w["reason"]}
    assert recorded == {"copy of a0.jpg", "another copy.jpg"}  # the training report names them too
    reliability("Bad input (dataset)", "the same image in train and test", f"warned in `check` and in the run's report, with the pairs: \u201c{leaks['test/a/copy of a0.jpg']}\u201d", cases=2)


def test_run_labels_that_do_not_match_the_data_are_a_clear_error(tmp_path: Path, tiny_weights: Path, reliability) -> None:
    weights = tiny_weights
    run = tl.train(tl.load_dataset(_three_classes(tmp_path / "train", ("cat", "dog", "fox"))), TINY, weights=weights, precision="fp32", cache_dir=tmp_path / "c")
    other = tl.load_dataset(_three_classes(tmp_path / "other", ("cat", "dog", "owl")))
    with pytest.raises(tl.RunError) as info:
        run.evaluate(other)
    message = str(info.value)
    assert "(owl)" in message and "(fox)" in message and "\n" not in message
    subset = tl.load_dataset(_three_classes(tmp_path / "subset", ("cat", "dog")))
    assert run.evaluate(subset).metrics["n"] > 0  # fewer classes than the run: fine
    reliability("Bad input (dataset)", "run labels that don't match the data evaluated", f"clear error: \u201c{message.split(': ', 1)[1]}\u201d")


def _three_classes(root: Path, names: tuple[str, ...]) -> Path:
    good_photos(root, names, n=5)
    return root
