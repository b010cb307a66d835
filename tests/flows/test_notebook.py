"""The analysts' notebook runs cell by cell against a catalog made by a real backup."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from support.flow import Registered

from bingobackup.specs.job import load_job_spec
from flows.backup import run_backup_now

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "backup_history.ipynb"


def test_backup_history_notebook_runs_on_a_real_catalog(registered: Registered, monkeypatch) -> None:
    state = run_backup_now(load_job_spec(registered.spec(content=[{"vm": "linux_local"}])))
    assert state.is_completed(), state.message
    monkeypatch.setenv("BINGOBACKUP_POOL", str(registered.pool_dir))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH", "")])
    )
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()  # raises on any cell error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert "linux_local" in text  # the backed-up VM shows in the per-VM table
    assert any("image/png" in o.get("data", {}) for o in outputs)  # and the plots were drawn
