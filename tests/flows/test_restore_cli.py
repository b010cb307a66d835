"""`bingobackup restore disk SPEC.yaml` as an operator types it: the code is shown and asked for;
a wrong `--confirm` code ends the command with nothing created."""

from __future__ import annotations

from pathlib import Path

import yaml
from support.flow import Registered
from support.restore import back_up
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.errors import BingoBackupError
from bingobackup.restore.verification import verification_code
from bingobackup.specs.restore import load_restore_spec


def test_restore_disk_command_asks_for_the_code_and_refuses_a_wrong_one(
    registered: Registered, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    backed_up = back_up(registered, tmp_path)
    spec_data = backed_up.spec(
        kind="disk", target={"disks": [{"volume": backed_up.data_volume, "name": "cli-data"}]}
    )
    spec_file = tmp_path / "restore-disk.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data))
    code = verification_code(load_restore_spec(spec_data))
    volumes_before = {v.volume_id for v in registered.client.describe_volumes()}
    runner = CliRunner()

    wrong = runner.invoke(app, ["restore", "disk", str(spec_file), "--confirm", "NOPE42"])
    assert isinstance(wrong.exception, BingoBackupError)
    assert "is wrong; nothing was created" in str(wrong.exception)
    assert code not in str(wrong.exception) + wrong.output  # a script cannot read the code off the error
    assert {v.volume_id for v in registered.client.describe_volumes()} == volumes_before

    typed = runner.invoke(app, ["restore", "disk", str(spec_file)], input=f"{code}\n")
    assert typed.exit_code == 0, typed.output
    assert code in typed.output and "cli-data" not in volumes_before
    names = [v.name for v in registered.client.describe_volumes() if v.volume_id not in volumes_before]
    assert names == ["cli-data"]
