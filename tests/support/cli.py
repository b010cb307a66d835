"""The CLI as a test drives it in-process: a command's output, or the error it stops with."""

from __future__ import annotations

from typer.testing import CliRunner

from bingobackup.cli.main import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def invoke_stdout(*args: str) -> str:
    """`invoke`, but only what the command wrote to stdout (its notes on stderr left out)."""
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(*args: str) -> str:
    """The operator error a command stops with (`main()` prints it and exits 2)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code != 0 and result.exception is not None, result.output
    return str(result.exception)
