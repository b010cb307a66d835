"""What an operator reads in a backup run's Logs tab (the Prefect API's log of the run), for a
run started by `bingobackup backup run` as typed at a shell: each VM started and finished
with its bytes and speed, each disk, the snapshot and volume ids made and removed, a failed
VM's reason; the command's own console stays quiet."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from support.flow import POOL_PASSPHRASE, Registered, bingobackup_command, run_log_messages
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cli.prefect_server import ServerInfo


def test_backup_run_from_the_cli_logs_each_vm_disk_and_snapshot_to_the_api(
    registered: Registered, prefect_server: ServerInfo, tmp_path: Path
) -> None:
    broken = next(i for i in registered.client.describe_instances() if i.name == "centos6-legacy")
    broken_disk = broken.block_devices[0].volume_id
    registered.volume_file(broken_disk).unlink()  # its disk is gone on the storage: the VM fails
    name = f"logs-{registered.cloud}"
    spec_file = tmp_path / "job.yaml"
    spec = registered.spec(name=name, content=[{"vm": "linux_local"}, {"vm": "centos6-legacy"}])
    spec_file.write_text(yaml.safe_dump(spec))
    # As an operator's shell has it: API logging on (the session's in-process runs turn it off).
    env = {**os.environ, "PREFECT_API_URL": prefect_server.url, "PREFECT_LOGGING_TO_API_ENABLED": "true"}
    done = subprocess.run(
        bingobackup_command("backup", "run", str(spec_file)),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # The console has the table, not the run's INFO lines.
    assert "centos6-legacy" in done.stdout
    assert "started (attempt 1)" not in done.stdout + done.stderr

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=name)))
    ok = next(i for i in registered.client.describe_instances() if i.name == "linux_local")
    ok_vm, failed_vm = f"VM linux_local ({ok.instance_id})", f"VM centos6-legacy ({broken.instance_id})"
    messages = run_log_messages(run.id, until=f"{ok_vm} finished")
    log = "\n".join(messages)

    assert f"{ok_vm} started (attempt 1): {len(ok.block_devices)} disk(s)" in log, log
    finished = next(m for m in messages if m.startswith(f"{ok_vm} finished: "))
    assert re.search(
        r"read [\d.]+ \w+, sent [\d.]+ \w+, stored [\d.]+ \w+ in [\d.]+ s \([\d.]+ MB/s\)", finished
    )
    for device in ok.block_devices:
        disk = device.volume_id
        assert re.search(rf"disk {disk} \(linux_local, \w+\) backed up: read ", log), log
        snapshot = re.search(rf"snapshot (\S+) of disk {disk} created", log)
        assert snapshot, log
        assert f"snapshot {snapshot[1]} removed" in log
        volume = re.search(rf"volume (\S+) created from snapshot {snapshot[1]} of disk {disk}", log)
        assert volume, log
        assert f"volume {volume[1]} attached to backup host {registered.hosts['cluster-a']}" in log
        assert f"volume {volume[1]} removed" in log
    # The failed VM's line names it and why: its disk's snapshot failed.
    failure = next(m for m in messages if m.startswith(f"{failed_vm} failed (attempt 1) after "))
    assert "went to state 'error'" in failure and "Check the snapshot" in failure, failure
    assert re.search(rf"snapshot \S+ of disk {broken_disk} created", log), log
    for secret in (ACCESS_KEY, SECRET_KEY, POOL_PASSPHRASE):
        assert secret not in log
