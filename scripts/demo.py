"""`make demo`: train and evaluate on Oxford-IIIT Pet, then say where the results are.

Data, in order: --data PATH (make demo DATA=path), ../shared/data/oxford-iiit-pet-mini, a previously
downloaded data/oxford-iiit-pet, a fresh download (online users), else one sentence saying what to do.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data")
    data = find_data(parser.parse_args().data)
    exe = [sys.executable, "-m", "transferlab"]
    print(f"$ transferlab train {data} --out runs/demo", flush=True)
    shutil.rmtree(RUN, ignore_errors=True)
    subprocess.run([*exe, "train", str(data), "--out", str(RUN)], check=True)
    print(f"\n$ transferlab evaluate runs/demo {data}", flush=True)
    subprocess.run([*exe, "evaluate", str(RUN), str(data), "--out", str(RUN / "evaluation")], check=True)
    print(f"\nResults: {RUN}/ (model.safetensors, model.json, metrics.json, confusion_matrix.png, top_losses.png, predictions.csv)")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
