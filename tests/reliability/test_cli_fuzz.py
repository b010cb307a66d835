"""Generated argument lists for the main commands (hypothesis): each ends in a usage error, an
operator error (one line, as `main()` prints it) or a result; never a traceback.

The tokens are the command's own option names mixed with awkward values: negative and huge
numbers, unicode, control characters, empty strings, a pool directory, a missing path. No
Prefect server answers (PREFECT_API_URL names a closed port), so commands needing the registry
must say so in one line too. `FUZZ_EXAMPLES=N` runs N random examples per command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bingobackup.cli.main import _is_operator_error, app
from bingobackup.pools import LocalDirBlobStore, create_pool_in

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10")),
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COMMANDS = [
    ("backup", "run"),
    ("export-disk",),
    ("verify",),
    ("gc",),
    ("prune",),
    ("sets", "list"),
    ("sets", "delete"),
    ("catalog", "query"),
    ("catalog", "check"),
    ("pool", "list"),
    ("pool", "create"),
    ("job", "list"),
    ("restore", "vm"),
    ("restore", "disk"),
    ("job", "create"),
    ("job", "show"),
]


def _command(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)  # a click group (typer may bring its own click)
    for name in path:
        found = command.commands.get(name)
        assert found is not None, f"no command {' '.join(path)}"
        command = found
    return command


def _option_names(command: Any) -> list[str]:
    return sorted(
        name for param in command.params for name in getattr(param, "opts", []) if name.startswith("-")
    )


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No registry, no server, a home of its own; returns a real (empty) dedup pool directory."""
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.delenv("BINGOBACKUP_POOL_PASSPHRASE", raising=False)
    pool_dir = tmp_path / "pool"
    create_pool_in(LocalDirBlobStore(pool_dir, "pool"), "dedup")
    return pool_dir


def _values(pool_dir: Path, missing: Path) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [str(pool_dir), str(missing), "", "-", "--", "0", "-1", "101", "1e309", "50%", "abc%"]
        ),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=20),
    )


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_generated_arguments_end_in_a_usage_error_or_a_result(
    path: tuple[str, ...], offline: Path, tmp_path: Path
) -> None:
    options = _option_names(_command(path))
    values = _values(offline, tmp_path / "missing")
    token = st.one_of(st.sampled_from(options), values) if options else values
    runner = CliRunner()

    @FUZZ
    @given(st.lists(token, max_size=8))
    def check(arguments: list[str]) -> None:
        if any("\x00" in a for a in arguments):
            return  # an operating system passes no NUL in an argument
        result = runner.invoke(app, [*path, *arguments])
        error = result.exception
        if error is None or isinstance(error, SystemExit):
            assert result.exit_code in (0, 1, 2), result.output
            assert "Traceback" not in result.output, result.output
            return
        assert _is_operator_error(error), (
            f"`bingobackup {' '.join(path)} {arguments}` raised {type(error).__name__}: {error}"
        )
        assert "\n" not in str(error).strip(), f"a message of more than one line: {error!r}"

    check()
