"""An operator's mistakes end in one clear line and a non-zero exit, never in a traceback, and
are caught before anything is written or asked for (issue 28, item 5).

Where a traceback could reach the terminal (Prefect's console log, the command's own error
handler) the command runs as a subprocess, as the operator runs it: CliRunner sees neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterLevel
from prefect.client.schemas.sorting import LogSort
from support.flow import POOL_PASSPHRASE, Registered
from support.pool_files import damage_chunk
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.errors import BingoBackupError
from bingobackup.pools import open_pool
from bingobackup.specs.job import load_job_spec
from flows.backup import run_backup_now

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def bingobackup(*args: str, home: Path, prefect_server: ServerInfo | None = None) -> tuple[int, str]:
    """(exit code, stdout and stderr together) of the installed command."""
    env = {**os.environ, "BINGOBACKUP_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("BINGOBACKUP_DEBUG", None)
    env.pop("BINGOBACKUP_POOL_PASSPHRASE", None)
    if prefect_server is not None:
        env["PREFECT_API_URL"] = prefect_server.url
    done = subprocess.run(
        [str(Path(sys.executable).with_name("bingobackup")), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def backup_set(registered: Registered) -> str:
    state = run_backup_now(load_job_spec(registered.spec(content=[{"vm": "linux_local"}])))
    result = state.result(raise_on_failure=False)
    assert isinstance(result, dict) and result["status"] == "ok", state.message
    return str(result["set_id"])


def linux_local_volume(registered: Registered) -> str:
    [instance] = [i for i in registered.client.describe_instances() if i.name == "linux_local"]
    [disk] = instance.block_devices
    return disk.volume_id


def test_backup_run_with_an_unknown_pool_is_one_line_and_no_run(
    registered: Registered, prefect_server: ServerInfo, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "job.yaml", registered.spec(pool="no-such-pool"))
    code, output = bingobackup(
        "backup", "run", str(spec), home=tmp_path / "home", prefect_server=prefect_server
    )
    assert code == 2
    assert output.splitlines() == [
        "Error: No pool named 'no-such-pool'. List them with `bingobackup pool list`."
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cloud", "no-such-cloud", "No registered cloud named 'no-such-cloud'"),
        ("backup_host", "i-00000000", "No registered backup host named 'i-00000000'"),
        ("content", [{"vm": "no-such-vm"}], "No VM named 'no-such-vm'"),
    ],
)
def test_backup_run_with_an_unknown_resource_is_refused_before_the_run_starts(
    registered: Registered,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: Any,
    message: str,
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    spec = write_spec(tmp_path / "job.yaml", registered.spec(**{field: value}))
    result = runner.invoke(app, ["backup", "run", str(spec)])
    assert isinstance(result.exception, BingoBackupError), result.output
    assert message in str(result.exception)
    assert "watch it at" not in result.output  # no flow run was started


def test_a_run_failing_inside_the_flow_prints_no_traceback_but_keeps_it_in_the_run_log(
    registered: Registered, prefect_server: ServerInfo, tmp_path: Path
) -> None:
    # Passes the CLI's checks; the run refuses it once it has opened the pool (4 MiB chunks).
    data = registered.spec(
        name="tiny-buffer", content=[{"vm": "linux_local"}], options={"resume_buffer_mib": 1}
    )
    spec = write_spec(tmp_path / "job.yaml", data)
    code, output = bingobackup(
        "backup", "run", str(spec), home=tmp_path / "home", prefect_server=prefect_server
    )
    assert code == 1
    assert "Traceback" not in output and 'File "' not in output, output
    assert "set options.resume_buffer_mib to at least 4" in output
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(level=LogFilterLevel(ge_=40)), sort=LogSort.TIMESTAMP_DESC, limit=50
        )
    assert any("Traceback" in log.message and "ResumeBufferTooSmall" in log.message for log in logs)


def test_a_spec_file_that_is_not_utf8_is_named_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"version: 1\nname: caf\xe9\n")
    result = runner.invoke(app, ["backup", "run", str(spec)])
    assert isinstance(result.exception, BingoBackupError)
    assert str(result.exception) == (
        f"Spec file {spec} is not UTF-8 text (byte offset 20, line 2): save it as UTF-8."
    )


def test_export_disk_checks_its_output_before_writing_and_says_how_to_give_the_passphrase(
    registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("BINGOBACKUP_HOME", str(home))
    set_id = backup_set(registered)
    volume = linux_local_volume(registered)
    base = ["export-disk", "--pool", str(registered.pool_dir), "--set", set_id, "--volume", volume]

    def export(output: Path, *more: str) -> Any:
        monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
        return runner.invoke(app, [*base, "--output", str(output), *more])

    def refused(output: Path, *more: str) -> str:
        result = export(output, *more)
        assert isinstance(result.exception, BingoBackupError), result.output
        return str(result.exception)

    existing_dir = tmp_path / "images"
    existing_dir.mkdir()
    assert refused(existing_dir) == (
        f"--output {existing_dir} is a directory: give the image's file name, "
        f"e.g. --output {existing_dir / volume}.raw"
    )
    assert list(existing_dir.iterdir()) == [] and not list(tmp_path.glob(".*partial*"))

    missing = tmp_path / "no-such-dir" / "disk.raw"
    assert refused(missing) == (
        f"The directory of --output {missing}, {missing.parent}, does not exist: "
        "create it or choose another path."
    )

    image = existing_dir / "disk.raw"
    image.write_bytes(b"keep me")
    assert refused(image) == f"{image} already exists: pass --force to overwrite it, or choose another path."
    assert image.read_bytes() == b"keep me"
    assert export(image, "--force").exit_code == 0
    assert image.stat().st_size > len(b"keep me")

    # The whole message, on one line, as the operator's terminal shows it.
    code, output = bingobackup(*base, "--output", str(tmp_path / "x.raw"), home=home)
    assert code == 2
    assert output.splitlines() == [
        f"Error: pool {registered.pool_dir.name} is encrypted and no passphrase was given; nothing was read "
        "or written. Pass the pool's passphrase with --passphrase or the environment variable "
        "BINGOBACKUP_POOL_PASSPHRASE."
    ]


def test_a_damaged_chunk_names_every_backup_set_that_shares_it(
    registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    first, second = backup_set(registered), backup_set(registered)
    volume = linux_local_volume(registered)
    ref = open_pool(registered.pool_dir, POOL_PASSPHRASE).load_manifest(second, volume).chunks[0]
    damage_chunk(registered.pool_dir, ref, ref.stored_size // 2)
    output = tmp_path / "disk.raw"
    pool = str(registered.pool_dir)
    args = ["export-disk", "--pool", pool, "--set", second, "--volume", volume, "--output", str(output)]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, BingoBackupError), result.output
    message = str(result.exception)
    assert ref.digest in message and "another backup set" not in message
    assert (
        f"2 backup sets hold this chunk and cannot restore this region either: {first}, {second}" in message
    )
    assert not output.exists()


@pytest.mark.parametrize(
    ("kind", "source", "message"),
    [
        ("vm", {"vm": "no-such-vm", "set": "latest"}, "holds no good backup of VM 'no-such-vm'"),
        ("disk", {"vm": "linux_local", "set": "no-such-set"}, "No committed backup set no-such-set"),
    ],
)
def test_restore_with_an_unknown_vm_or_set_is_refused_before_the_code_is_asked(
    registered: Registered,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    source: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    spec = {
        "version": 1,
        "name": "restore-unknown",
        "kind": kind,
        "cloud": registered.cloud,
        "backup_host": registered.hosts["cluster-a"],
        "pool": registered.pool,
        "source": source,
    }
    result = runner.invoke(app, ["restore", kind, str(write_spec(tmp_path / "restore.yaml", spec))])
    assert isinstance(result.exception, BingoBackupError), result.output
    assert message in str(result.exception)
    assert "erification code" not in result.output  # neither shown nor asked for
