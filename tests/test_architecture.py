"""The layer rules are checked, not hoped for: import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_import_layers_are_kept() -> None:
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_imports_another_modules_private_names() -> None:
    """A name starting with `_` belongs to its module: a second module needing it means the
    shared part wants a module of its own (how mover/reading.py and storage/_s3common.py came
    about). Private modules (`_s3common`) are checked by import-linter's package rules."""
    offenders = []
    for path in sorted((ROOT / "bingobackup").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bingobackup"):
                package = ROOT.joinpath(*(node.module or "").split("."))
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_")
                    and not a.name.startswith("__")
                    and not (package / f"{a.name}.py").exists()  # a package's private module
                ]
                if private:
                    offenders.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert offenders == []


def test_no_import_cycle_between_engine_modules() -> None:
    """Stricter than acyclic_siblings (which compares packages): no two engine modules reach
    each other, even through a TYPE_CHECKING or function-level import."""
    import grimp

    graph = grimp.build_graph("bingobackup", cache_dir=None)
    cycles = [
        (module, other)
        for module in sorted(graph.modules)
        for other in graph.find_modules_directly_imported_by(module)
        if other != module
        and not module.startswith(f"{other}.")  # a package's __init__ re-exporting its modules
        and not other.startswith(f"{module}.")
        and graph.chain_exists(importer=other, imported=module)
    ]
    assert cycles == []


def test_pool_kinds_are_looked_up_in_their_registry_not_branched_on() -> None:
    """pools/kinds.py says what each kind does; `pool create`, registrations and stats ask it."""
    chains = re.compile(r"\bkind\s*(==|!=|in\s*\()")
    for path in (
        "bingobackup/cli/pool.py",
        "bingobackup/resources/pools.py",
        "bingobackup/resources/models.py",
    ):
        text = (ROOT / path).read_text()
        assert not chains.search(text), f"{path} branches on a pool kind's name"


def test_tests_share_code_through_the_support_package_only() -> None:
    """Shared helpers live in tests/support/ (imported as `support.NAME`): no test module
    imports another test module, and no helper module hides beside the tests."""
    tests = ROOT / "tests"
    imports_of_tests, stray = [], []
    for path in sorted(tests.rglob("*.py")):
        if "fixtures" in path.parts or path.is_relative_to(tests / "support"):
            continue
        # __main__.py: a campaign's entry point (`python -m tests.reliability`), not a helper.
        if not path.name.startswith(("test_", "conftest")) and path.name not in (
            "__init__.py",
            "__main__.py",
        ):
            stray.append(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            imports_of_tests += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("test_")]
    assert imports_of_tests == [] and stray == []


LONGEST_FUNCTION = 60
ROOMS_WITH_SHORT_FUNCTIONS = ("bingobackup", "tasks", "flows", "catalog", "deployments")


def test_no_function_outside_the_cli_is_longer_than_sixty_lines() -> None:
    """A function past a screenful hides its steps: split it into named ones (issue 27).
    Counted from the def line to the last line, docstring included; the CLI is exempt."""
    too_long = []
    for room in ROOMS_WITH_SHORT_FUNCTIONS:
        for path in sorted((ROOT / room).rglob("*.py")):
            if path.is_relative_to(ROOT / "bingobackup" / "cli"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > LONGEST_FUNCTION:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert too_long == [], "split these into named steps:\n" + "\n".join(too_long)
