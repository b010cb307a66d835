"""`bingobackup restore vm SPEC.yaml`, `bingobackup restore disk SPEC.yaml`: run a restore now.

The command plans the restore (a wrong spec is refused here), then shows the verification
code and asks for it (or takes `--confirm CODE` for scripts); a wrong code ends the command
before anything is created.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bingobackup.cli.backup import outcome_table
from bingobackup.cli.common import acting_user_name, byte_progress, console, prefect_api
from bingobackup.errors import BingoBackupError

app = typer.Typer(help="Restore VMs and disks from backup sets.", no_args_is_help=True)


def _confirmed(spec_name: str, code: str, confirm: str | None) -> str:
    from bingobackup.restore.verification import CODE_LENGTH

    if confirm is None:
        console.print(
            f"Restore [bold]{spec_name}[/] creates new resources. Verification code: [bold]{code}[/]"
        )
        confirm = typer.prompt(f"Type the {CODE_LENGTH}-character verification code to start")
    if confirm.strip().upper() != code:
        raise BingoBackupError(
            f"The verification code {confirm!r} is wrong; nothing was created. Run the command again "
            "without --confirm: it shows the code of this spec and asks for it."
        )
    return code


def run_restore_command(spec_path: Path, kind: str, confirm: str | None, quiet: bool = False) -> None:
    from bingobackup.restore.verification import verification_code
    from bingobackup.specs.restore import load_restore_spec

    spec = load_restore_spec(spec_path)
    if spec.kind != kind:
        raise BingoBackupError(
            f"{spec_path} is a {spec.kind} restore: run `bingobackup restore {spec.kind} {spec_path}`."
        )
    with prefect_api() as server:
        from tasks.restore import prepare_restore

        # The run's own planning, before the code is asked for: an unknown VM, set or target
        # is refused now, not after the operator typed the code (the run plans again).
        prepare_restore.fn(spec, acting_user_name())
        code = _confirmed(spec.name, verification_code(spec), confirm)
        from flows.restore import restore_disk, restore_vm

        flow = restore_vm if kind == "vm" else restore_disk
        console.print(f"Restore [bold]{spec.name}[/]: watch it at {server.ui_url}/runs")
        with byte_progress(f"{spec.name}: writing disks", quiet=quiet):
            state = flow(spec=spec, confirm=code, user=acting_user_name(), return_state=True)
    result = state.result(raise_on_failure=False)
    if not isinstance(result, dict):
        raise BingoBackupError(f"Restore {spec.name} failed before restoring any VM: {state.message}")
    rows = result.get("rows")
    if isinstance(rows, list) and rows:  # an idle restore has none
        console.print(outcome_table(rows, f"Restore {spec.name} ({result.get('status')})"))
    if not state.is_completed():
        # Idle (the precondition said no) is no failure, but nothing was restored either: exit 1.
        console.print(f"[{'yellow' if state.name == 'Idle' else 'red'}]{state.message}[/]")
        raise typer.Exit(1)


CONFIRM = typer.Option(None, "--confirm", help="The verification code (for scripts); asked for when absent")


@app.command("vm")
def vm(
    spec: Path = typer.Argument(..., help="Restore spec (YAML, kind: vm)"), confirm: str = CONFIRM
) -> None:
    """Restore backed-up VMs to new VMs; exit 0 only when every VM was restored or skipped."""
    run_restore_command(spec, "vm", confirm)


@app.command("disk")
def disk(
    spec: Path = typer.Argument(..., help="Restore spec (YAML, kind: disk)"), confirm: str = CONFIRM
) -> None:
    """Restore chosen backed-up disks to new volumes attached to the original or another VM."""
    run_restore_command(spec, "disk", confirm)
