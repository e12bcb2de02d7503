"""The lesson notebook runs top to bottom on the shared Oxford mini set, and its committed outputs are the ones a
fresh run prints, so it can neither rot nor go stale (regenerate with `python scripts/make_notebook.py --execute`)."""

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import OXFORD_MINI, REPO, needs_oxford

NOTEBOOK = REPO / "examples" / "transfer_learning.ipynb"
TOLERANCE = 0.01  # absolute: an accuracy may move by one test image in 298 (0.003) across CPUs, not more
DURATION = re.compile(r"\d+(?:\.\d+)?\s?s\b")  # "in 35 s": timings differ on every run
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def printed_numbers(notebook: Any) -> list[tuple[int, str, list[float]]]:
    """(code cell number, stream, the numbers its text printed) per code cell and stream, durations left out.

    stdout and stderr are read separately (their chunks may interleave differently from run to run); rich
    outputs (HTML, images, reprs of tensors) are not compared, the numbers a cell prints are.
    """
    out = []
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code_cells, 1):
        for stream in ("stdout", "stderr"):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == stream)
            out.append((number, stream, [float(n) for n in NUMBER.findall(DURATION.sub("", text))]))
    return out


def stale_outputs(committed: Any, fresh: Any, tolerance: float = TOLERANCE) -> list[str]:
    """One line per code cell whose printed numbers differ between the committed and the fresh notebook."""
    problems = []
    for (cell, stream, old), (_, _, new) in zip(printed_numbers(committed), printed_numbers(fresh)):
        if len(old) != len(new) or any(abs(a - b) > tolerance for a, b in zip(old, new)):
            problems.append(f"code cell {cell} ({stream}): committed {old}, fresh {new}")
    return problems


@pytest.mark.slow
@needs_oxford
def test_the_transfer_learning_notebook_executes_and_its_outputs_are_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert all(cell.get("outputs") for cell in committed.cells if cell.cell_type == "code"), \
        "the committed notebook has code cells without outputs — run `python scripts/make_notebook.py --execute`"
    notebook = nbformat.read(shutil.copy(NOTEBOOK, tmp_path), as_version=4)
    monkeypatch.setenv("OXFORD", str(OXFORD_MINI))
    monkeypatch.setenv("TQDM_DISABLE", "1")  # as make_notebook.py executes it: no progress bars in the outputs
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "accuracy" in text and "the saved file:" in text and "Traceback" not in text
    assert (tmp_path / "dog_as_cat.png").is_file()
    stale = stale_outputs(committed, notebook)
    assert not stale, "the committed notebook's outputs are stale — run `python scripts/make_notebook.py --execute`:\n" + "\n".join(stale)


def test_stale_outputs_are_found() -> None:
    """The comparison itself: a changed printed number is reported, a changed duration is not."""
    nbformat = pytest.importorskip("nbformat")

    def notebook(text: str) -> Any:
        cell = nbformat.v4.new_code_cell("print(...)", outputs=[nbformat.v4.new_output("stream", name="stdout", text=text)])
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 1"), cell])

    committed = notebook("fine-tuned 1 epoch(s) in 35 s; accuracy 0.966 on 298 images\n")
    assert stale_outputs(committed, notebook("fine-tuned 1 epoch(s) in 41 s; accuracy 0.966 on 298 images\n")) == []
    assert stale_outputs(committed, notebook("fine-tuned 1 epoch(s) in 35 s; accuracy 0.969 on 298 images\n")) == []
    assert stale_outputs(committed, notebook("fine-tuned 1 epoch(s) in 35 s; accuracy 0.916 on 298 images\n")) == [
        "code cell 1 (stdout): committed [1.0, 0.966, 298.0], fresh [1.0, 0.916, 298.0]"]
    assert stale_outputs(committed, notebook("fine-tuned 1 epoch(s) in 35 s; accuracy 0.966 on 297 images\n"))
