"""A backup writes its catalog rows without importing pandas (pyarrow would import it on its
first conversion: catalog/schema.py `arrow_without_pandas`), and the same process can still
read the catalog into pandas afterwards, as `catalog query` and the analytics do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WRITE_THEN_QUERY = """
import sys
from support.catalog import make_set
from catalog import Catalog, CatalogWriter

root = sys.argv[1]
parts = make_set("SET", vms=("web", "db"))
CatalogWriter(root).write_backup_set(*parts.args())
print("pandas after writing:", "pandas" in sys.modules)
with Catalog.open(root) as cat:
    frame = cat.query("SELECT vm_name FROM vm_backups ORDER BY vm_name")
print("read as:", type(frame).__module__.split(".")[0], list(frame["vm_name"]))
"""


def test_catalog_rows_are_written_without_pandas_and_read_with_it(tmp_path: Path) -> None:
    tests = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", WRITE_THEN_QUERY, str(tmp_path)],
        env={"PYTHONPATH": f"{tests.parent}:{tests}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "pandas after writing: False" in done.stdout, done.stdout
    assert "read as: pandas ['db', 'web']" in done.stdout, done.stdout
