"""`make demo`: train and evaluate on Oxford-IIIT Pet, then print the next commands to try.

Data, in order: --data PATH (make demo DATA=path), ../shared/data/oxford-iiit-pet-mini, a previously
downloaded data/oxford-iiit-pet, a fresh download (online users), else one sentence saying what to do.
Every command shown runs as printed from the repository root (`.venv/bin/transferlab`, relative paths).
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini"
DOWNLOADED = ROOT / "data" / "oxford-iiit-pet"
RUN = ROOT / "runs" / "demo"


def find_data(given: str | None) -> Path:
    if given:
        return Path(given)
    if SHARED.is_dir():
        return SHARED
    if DOWNLOADED.is_dir():
        return DOWNLOADED
    from transferlab.data.download import get_dataset
    from transferlab.errors import DataError

    print("no local Oxford-IIIT Pet data; downloading it (about 800 MB) …", flush=True)
    try:
        return get_dataset("oxford-iiit-pet", ROOT / "data")
    except DataError as err:
        sys.exit(
            f"No Oxford-IIIT Pet data here and the download failed ({err}); run `make demo DATA=/path/to/oxford-iiit-pet` "
            "with the dataset's images/ and annotations/ folders."
        )


def shown(path: Path | str) -> str:
    """``path`` as typed from the repository root: relative where it can be (``../shared/...``), else as given."""
    try:
        return os.path.relpath(Path(path).absolute(), ROOT)
    except ValueError:  # another drive (Windows)
        return str(path)


def cli() -> list[str]:
    """The ``transferlab`` command of this interpreter's environment (``.venv/bin/transferlab`` under make)."""
    script = Path(sys.executable).parent / "transferlab"
    return [shown(script)] if script.exists() else [sys.executable, "-m", "transferlab"]


def run(*args: str) -> None:
    """Echo the command as it can be typed, then run it from the repository root."""
    command = [*cli(), *args]
    print("\n$ " + shlex.join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def a_test_photo(predictions: Path) -> str:
    """A held-out photo the run classified correctly (else the first one) from ``predictions.csv``."""
    with predictions.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = list(csv.DictReader(f))
    return next((r["path"] for r in rows if r["correct"] == "1"), rows[0]["path"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data")
    data = shown(find_data(parser.parse_args().data))
    shutil.rmtree(RUN, ignore_errors=True)
    run("train", data, "--out", shown(RUN))
    run("evaluate", shown(RUN), data, "--out", shown(RUN / "evaluation"))
    photo = shown(Path(ROOT, a_test_photo(RUN / "evaluation" / "predictions.csv")))
    print(f"\nResults: {shown(RUN)}/ (model.safetensors, model.json, metrics.json, confusion_matrix.png, top_losses.png, predictions.csv)")
    print("\nNext, from this folder:")
    for args in (["predict", shown(RUN), photo], ["serve", shown(RUN)], ["report", shown(RUN)]):
        print("  " + shlex.join([*cli(), *args]))
    print("(serve answers on http://127.0.0.1:8000 until Ctrl-C. Ray, for `predict --ray`, is opt-in: .venv/bin/pip install -e '.[ray]')")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
