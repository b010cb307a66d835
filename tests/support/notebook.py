"""Runs the analysts' notebook the way a user's Jupyter would: a fresh kernel, every cell."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

PROJECT = Path(__file__).resolve().parents[2]
NOTEBOOK = PROJECT / "notebooks" / "backup_history.ipynb"


@dataclass(frozen=True)
class NotebookRun:
    text: str  # every cell's printed and displayed text
    plots: int  # images drawn


def run_notebook(monkeypatch: pytest.MonkeyPatch, notebook_path: Path = NOTEBOOK) -> NotebookRun:
    """Executes the notebook with the environment the test set up; raises on any cell's error."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    return NotebookRun(text, sum(1 for o in outputs if "image/png" in o.get("data", {})))
