"""The lesson notebook runs top to bottom on the shared Oxford mini set, so it cannot rot."""

import os
import shutil
from pathlib import Path

import pytest

from .conftest import OXFORD_MINI, REPO, needs_oxford

NOTEBOOK = REPO / "examples" / "transfer_learning.ipynb"


@pytest.mark.slow
@needs_oxford
def test_the_transfer_learning_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(shutil.copy(NOTEBOOK, tmp_path), as_version=4)
    monkeypatch.setenv("OXFORD", str(OXFORD_MINI))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "accuracy" in text and "predict on the file:" in text and "Traceback" not in text
    assert (tmp_path / "dog_as_cat.png").is_file()
