"""`bingobackup demo`: the main job end to end on the embedded default.

Starts (or reuses) a simulated BingoCloud and the local Prefect server in the background,
registers the cloud and its backup hosts, and shows what the cloud holds. Everything lives
under BINGOBACKUP_HOME/demo, so running it again reuses the same cloud.
"""

from __future__ import annotations

import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml
from rich.table import Table

from bingobackup.checksums import file_sha256
from bingobackup.cli.background import BackgroundService, free_port
from bingobackup.cli.backup import outcome_table, run_backup
from bingobackup.cli.common import console, registry
from bingobackup.cli.environment import bingobackup_home
from bingobackup.cli.pools_index import remember
from bingobackup.cli.resources import render_tree
from bingobackup.errors import BingoBackupError
from bingobackup.mover.chunks import human_bytes

if TYPE_CHECKING:
    from bingobackup.cloud.client import BingoCloudClient
    from bingobackup.cloud.models import Instance
    from bingobackup.resources.discovery import VmEntry

DEMO_CLOUD = "demo"
DEMO_ACCESS_KEY = "DEMOACCESSKEY0001"
DEMO_GROUP = "operators"
DEMO_POOL = "demo-dedup"
DEMO_SIM_PORT = 18080
RESTORE_VM = "linux_mul_disk"  # three disks: a system disk and two data disks
RESTORED_NAME = f"{RESTORE_VM}-restored"
RESTORE_JOB = "demo-restore"
# The demo's backup jobs run daily at this time, in the cloud's zone (UTC here).
BACKUP_SCHEDULE = {"kind": "daily", "at": "02:00"}
# Keeps each VM's newest set and one a day for a week: of the demo's two rounds, the first goes.
DEMO_RETENTION = {"keep_last": 1, "keep_daily": 7}
_SIM = BackgroundService(name="demo-sim", health_path="/_sim/health")


def _demo_secret(demo_dir: Path) -> str:
    """The demo cloud's Secret Key: random per installation, kept private on disk."""
    path = demo_dir / "sim-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def start_demo_simulator(demo_dir: Path) -> tuple[str, str]:
    """The endpoint of the demo's simulated BingoCloud (started once) and its Secret Key."""
    secret_key = _demo_secret(demo_dir)
    running = _SIM.status()
    if running is None:
        port = free_port(DEMO_SIM_PORT)
        command = [
            str(Path(sys.executable).with_name("bingobackup")),
            "sim",
            "serve",
            "--state",
            str(demo_dir / "sim-state"),
            "--port",
            str(port),
            "--access-key",
            DEMO_ACCESS_KEY,
            "--scenario",
            "demo",
        ]
        # The secret goes through the environment so it never shows in `ps`.
        env = {**os.environ, "BINGOBACKUP_SIM_SECRET_KEY": secret_key}
        running = _SIM.ensure(command, f"http://127.0.0.1:{port}", env=env)
    return running.url + "/", secret_key


def stop_demo_simulator() -> bool:
    return _SIM.stop()


def demo(
    stop: bool = typer.Option(
        False, "--stop", help="Stop the demo's background simulator and Prefect server"
    ),
) -> None:
    """Run the main job end to end on a simulated BingoCloud (no setup needed)."""
    if stop:
        from bingobackup.cli.prefect_server import stop_server
        from bingobackup.cli.worker import stop_background_workers

        # Workers first: they would otherwise log the server's absence until stopped.
        workers = [f"worker of {host}" for host in stop_background_workers()]
        stopped = workers + [
            name
            for name, ok in (("simulator", stop_demo_simulator()), ("Prefect server", stop_server()))
            if ok
        ]
        console.print(f"Stopped: {', '.join(stopped) or 'nothing was running'}.")
        return
    from bingobackup.cloud.client import BingoCloudClient
    from bingobackup.cloud.signing import mask_key
    from bingobackup.resources.discovery import CloudTree
    from bingobackup.resources.hosts import authorize
    from bingobackup.resources.simulated import BACKUP_HOST_PREFIX, register_simulated_cloud

    demo_dir = bingobackup_home() / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]bingobackup demo")
    endpoint, secret_key = start_demo_simulator(demo_dir)
    console.print(f"[1/12] Simulated BingoCloud running at {endpoint} (state in {demo_dir / 'sim-state'})")

    client = BingoCloudClient(endpoint, DEMO_ACCESS_KEY, secret_key)
    tree = CloudTree.from_client(client)
    backup_hosts = {vm.instance_id: vm for vm in tree.iter_vms() if vm.name.startswith(BACKUP_HOST_PREFIX)}

    with registry() as (store, user):
        from bingobackup.cli.prefect_server import status

        info = status()
        console.print(f"[2/12] Prefect server at {info.ui_url if info else '?'} holds registrations and runs")
        existed = store.get_cloud(DEMO_CLOUD) is not None
        _, hosts = register_simulated_cloud(
            store,
            user,
            name=DEMO_CLOUD,
            endpoint_port=int(endpoint.rsplit(":", 1)[1].strip("/")),
            access_key=DEMO_ACCESS_KEY,
            secret_key=secret_key,
            state_dir=demo_dir / "sim-state",
        )
        console.print(
            f"[3/12] Cloud '{DEMO_CLOUD}' {'re-verified' if existed else 'registered'}: "
            f"Access Key {mask_key(DEMO_ACCESS_KEY)}, keys checked against the API"
        )
        for cluster, host in sorted(hosts.items()):
            console.print(
                f"      backup host {host.name} ({host.instance_id}, {host.os_name} {host.os_version}) "
                f"in {cluster}: activated"
            )
        authorize(store, user, "cloud", [DEMO_CLOUD], [DEMO_GROUP])
        authorize(store, user, "host", sorted(backup_hosts), [DEMO_GROUP])
        console.print(f"      cloud and backup hosts authorized to user group '{DEMO_GROUP}'")

    console.print("[4/12] What the cloud holds:")
    console.print(render_tree(tree, f"cloud {DEMO_CLOUD} ({endpoint})", set(backup_hosts)))

    pool_dir = demo_dir / "pools" / DEMO_POOL
    _ensure_demo_pool(demo_dir, pool_dir)
    console.print(
        f"[5/12] Encrypted dedup pool '{DEMO_POOL}' at {pool_dir} (AES-256-GCM, zstd, 4 MiB chunks)"
    )

    specs = _write_demo_specs(demo_dir, backup_hosts)
    results: list[tuple[str, str, list[dict[str, object]], bool]] = []
    for round_name in ("first", "second"):
        console.print(
            f"[{6 if round_name == 'first' else 7}/12] {round_name.capitalize()} full backup of every VM:"
        )
        for spec_path in specs:
            set_id, rows, ok = run_backup(spec_path)
            results.append((round_name, set_id, rows, ok))
            console.print(outcome_table(rows, f"{round_name} backup: set {set_id}"))
    console.print("[8/12] Export one disk of every VM and compare SHA-256 with the source volume:")
    checks = _verify_exports(demo_dir, pool_dir, endpoint, secret_key)
    console.print(checks)
    console.print(
        f"[9/12] Restore VM {RESTORE_VM} from its latest backup set to a new VM, powered on, and compare "
        "its disks with the source volumes:"
    )
    console.print(_restore_and_verify(demo_dir, client, backup_hosts))
    _print_summary(results)
    console.print("[10/12] The control room: jobs, pool maintenance and a worker per backup host in Prefect:")
    jobs, code = _control_room(demo_dir, specs, backup_hosts)
    console.print(jobs)
    console.print(
        f"[11/12] Prune simulator: what the pool's daily prune would remove under the jobs' retention "
        f"({', '.join(f'{k} {v}' for k, v in DEMO_RETENTION.items())}); nothing is deleted:"
    )
    _prune_dry_run()
    console.print(f"[12/12] Verify pool '{DEMO_POOL}': read back every chunk its backup sets reference:")
    _verify_pool(demo_dir)
    console.rule()
    ui = info.ui_url if info else "(bingobackup server status)"
    first_job = f"demo-{sorted(h.cluster_id for h in backup_hosts.values())[0]}"
    console.print(
        f"Open the Prefect UI: {ui}\n"
        f"  Deployments: the jobs with their schedules, and the pool's prune, GC and verify.\n"
        f"  Press Run (Quick run) on {first_job}: the worker of its backup host runs it; the run's page shows "
        "progress and summary artifacts, and its Logs tab each VM.\n"
        f"  Press Run on {RESTORE_JOB}: its run pauses; press Resume on the run's page and type the "
        f"verification code [bold]{code}[/] to restore {RESTORE_VM} to a new VM.\n"
        "From the shell:\n"
        "  bingobackup job list    # the jobs and the pool maintenance with their next runs\n"
        f"  bingobackup sets tree --by host --pool {DEMO_POOL}\n"
        f"  bingobackup prune --pool {DEMO_POOL}    # the prune simulator; --yes deletes (the pool's daily prune does)\n"
        f"  bingobackup verify --pool {DEMO_POOL} --sample 10%\n"
        f"  bingobackup restore vm {demo_dir / 'restore-vm.yaml'}    # asks for the verification code\n"
        f'  bingobackup catalog query "SELECT vm_name, status, bytes_read, bytes_stored FROM vm_backups" --pool {DEMO_POOL}\n'
        "  notebook: notebooks/backup_history.ipynb (set BINGOBACKUP_POOL to the pool directory)\n"
        "  bingobackup demo --stop    # stop the workers, the simulator and the Prefect server"
    )


def _control_room(demo_dir: Path, specs: list[Path], backup_hosts: dict[str, VmEntry]) -> tuple[Table, str]:
    """The demo's jobs as Prefect deployments (each cluster's backup, daily; the restore of
    RESTORE_VM, started by hand), the pool's maintenance deployments, and a background worker
    per backup host, so an operator can work from the Prefect UI. Reruns update them in place.
    The jobs and their hosts' workers, and the restore job's verification code."""
    from bingobackup.cli.common import acting_user_name
    from bingobackup.cli.pool import deploy_maintenance
    from bingobackup.cli.worker import start_background_worker
    from deployments.jobs import JobError, JobInfo, check_job_resources, create_job, edit_job, read_job
    from deployments.kinds import load_any_spec, restore_code

    restore_host = yaml.safe_load((demo_dir / "restore-vm.yaml").read_text())["backup_host"]
    restore_job = demo_dir / "restore-job.yaml"
    restore_job.write_text(yaml.safe_dump(restore_spec(restore_host, {"kind": "manual"}), sort_keys=False))
    owner = acting_user_name()
    jobs: list[JobInfo] = []
    with registry() as (store, user):
        for path in [*specs, restore_job]:
            spec = load_any_spec(path)
            check_job_resources(store, user, spec)
            try:
                read_job(spec.name)
            except JobError:
                jobs.append(create_job(spec, owner))
            else:
                jobs.append(edit_job(spec.name, spec, owner))
        pool = store.get_pool(DEMO_POOL)
    assert pool is not None  # registered at step 5
    deploy_maintenance(pool, None)
    # Both workers start at once: each is a Python process importing Prefect (seconds).
    with ThreadPoolExecutor(len(backup_hosts)) as starting:
        workers = dict(
            zip(
                sorted(backup_hosts), starting.map(start_background_worker, sorted(backup_hosts)), strict=True
            )
        )
    table = Table("job", "kind", "schedule", "backup host", "worker")
    for job in jobs:
        host = backup_hosts[job.spec.backup_host]
        worker = workers[job.spec.backup_host]
        table.add_row(
            job.name,
            job.kind.label,
            job.schedule_description,
            f"{host.name} ({host.instance_id})",
            f"online, pid {worker.pid} (log {worker.log_path.name})",
        )
    code = restore_code(jobs[-1].spec)
    assert code is not None  # the last job is the restore job
    return table, code


def _prune_dry_run() -> None:
    from bingobackup.cli.prune import prune

    prune(job=None, pool=DEMO_POOL, dry_run=True, yes=False)


def _verify_pool(demo_dir: Path) -> None:
    from bingobackup.cli.verify import verify

    passphrase = (demo_dir / "pool-passphrase").read_text().strip()
    verify(pool=DEMO_POOL, set_id=None, vm=None, job=None, sample="100%", since_days=None, seed=None,
           passphrase=passphrase)  # fmt: skip


def _ensure_demo_pool(demo_dir: Path, pool_dir: Path) -> None:
    from bingobackup.resources.pools import create_registered_pool

    passphrase_file = demo_dir / "pool-passphrase"
    if not passphrase_file.exists():
        passphrase_file.write_text(secrets.token_urlsafe(24))
        passphrase_file.chmod(0o600)
    with registry() as (store, user):
        if store.get_pool(DEMO_POOL) is None:
            create_registered_pool(
                store,
                user,
                name=DEMO_POOL,
                kind="dedup",
                location=pool_dir,
                encrypted=True,
                passphrase=passphrase_file.read_text().strip(),
                groups=[DEMO_GROUP],
            )
    remember(DEMO_POOL, str(pool_dir.resolve()))


def _write_demo_specs(demo_dir: Path, backup_hosts: dict[str, VmEntry]) -> list[Path]:
    """One job per cluster: a backup host reads disks only inside its own cluster."""
    paths = []
    for instance_id, host in sorted(backup_hosts.items(), key=lambda kv: kv[1].name):
        path = demo_dir / f"job-{host.cluster_id}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "version": 2,
                    "name": f"demo-{host.cluster_id}",
                    "cloud": DEMO_CLOUD,
                    "backup_host": instance_id,
                    "pool": DEMO_POOL,
                    "content": [{"cluster": host.cluster_id}],
                    "schedule": BACKUP_SCHEDULE,
                    "options": {
                        "compression": "fast",
                        "parallel_vms": 2,
                        "dedup_mode": "agent",
                        # The demo has a VM with a raw disk: it can be backed up only powered off.
                        "power_off": True,
                        "retry": {"count": 1, "interval_minutes": 0},
                    },
                    # Applied by the pool's daily prune; step 11 shows what it would remove.
                    "retention": DEMO_RETENTION,
                },
                sort_keys=False,
            )
        )
        paths.append(path)
    return paths


def _verify_exports(demo_dir: Path, pool_dir: Path, endpoint: str, secret_key: str) -> Table:
    from bingobackup.mover.restore import write_disk_from_pool
    from bingobackup.pools import open_pool
    from catalog import Catalog

    passphrase = (demo_dir / "pool-passphrase").read_text().strip()
    pool = open_pool(pool_dir, passphrase, name=DEMO_POOL)
    out_dir = demo_dir / "exports"
    out_dir.mkdir(exist_ok=True)
    table = Table("VM", "disk", "size", "exported SHA-256", "source SHA-256", "equal")
    with Catalog.open(str(pool_dir), pool=DEMO_POOL) as cat:
        vms = cat.query(
            "SELECT DISTINCT ON (v.vm_id) v.vm_id, v.vm_name, s.set_id FROM vm_backups v "
            "JOIN backup_sets s USING (set_id) WHERE v.status = 'ok' ORDER BY v.vm_id, s.finished_at DESC"
        )
        for vm in vms.itertuples(index=False):
            disks = cat.query(
                f"SELECT volume_id, size_bytes FROM disk_backups WHERE set_id = '{vm.set_id}' "
                f"AND vm_id = '{vm.vm_id}' ORDER BY is_root DESC, volume_id LIMIT 1"
            )
            for disk in disks.itertuples(index=False):
                label = f"VM {vm.vm_name} disk {disk.volume_id}"
                manifest = pool.checked_manifest(cat.disk_manifest(vm.set_id, disk.volume_id), label)
                output = out_dir / f"{disk.volume_id}.raw"
                write_disk_from_pool(pool, manifest, output, label=label)
                source_path = demo_dir / "sim-state" / "volumes" / f"{disk.volume_id}.raw"
                # hashlib releases the GIL on large blocks: hash both images on both cores.
                with ThreadPoolExecutor(2) as hashers:
                    exported, source = hashers.map(file_sha256, [output, source_path])
                same = exported == source
                table.add_row(
                    vm.vm_name,
                    disk.volume_id,
                    human_bytes(disk.size_bytes),
                    exported[:16],
                    source[:16],
                    "[green]yes[/]" if same else "[red]NO[/]",
                )
                if not same:
                    raise BingoBackupError(
                        f"exported disk {disk.volume_id} of {vm.vm_name} differs from its source"
                    )
                output.unlink()
    return table


def restore_spec(backup_host: str, schedule: dict[str, object]) -> dict[str, object]:
    """The demo's restore of RESTORE_VM (from its latest set, to a new VM, powered on) on the
    backup host of its cluster: run once by the demo, and kept as the manual restore job."""
    return {
        "version": 1,
        "name": RESTORE_JOB,
        "kind": "vm",
        "cloud": DEMO_CLOUD,
        "backup_host": backup_host,
        "pool": DEMO_POOL,
        "source": {"vm": RESTORE_VM, "set": "latest"},
        # the source VM is running: its IP and MAC stay with it
        "target": {"name": RESTORED_NAME, "nics": [{"index": 0, "ip": "auto", "mac": "auto"}]},
        "same_name": "suffix",
        "power_on": True,
        "schedule": schedule,
    }


def _restore_and_verify(demo_dir: Path, client: BingoCloudClient, backup_hosts: dict[str, VmEntry]) -> Table:
    """Restore RESTORE_VM through the restore flow (the code typed for the operator) and compare
    the new VM's volumes with the source VM's, as multisets of SHA-256."""
    from bingobackup.cli.restore import run_restore_command
    from bingobackup.restore.verification import verification_code
    from bingobackup.specs.restore import load_restore_spec

    source = next(i for i in client.describe_instances() if i.name == RESTORE_VM)
    host = next(h for h in backup_hosts.values() if h.cluster_id == source.cluster_id)
    target = RESTORED_NAME
    spec_path = demo_dir / "restore-vm.yaml"
    spec_path.write_text(
        yaml.safe_dump(restore_spec(host.instance_id, {"kind": "immediate"}), sort_keys=False)
    )
    code = verification_code(load_restore_spec(spec_path))
    console.print(f"      verification code {code} (typed for you here; the command asks for it)")
    run_restore_command(spec_path, "vm", confirm=code)
    restored = max(
        (i for i in client.describe_instances() if i.name.startswith(target)),
        key=lambda i: i.launch_time.timestamp() if i.launch_time else 0.0,
    )
    volumes = demo_dir / "sim-state" / "volumes"

    def digests(instance: Instance) -> list[str]:
        with ThreadPoolExecutor(2) as hashers:
            paths = [volumes / f"{b.volume_id}.raw" for b in instance.block_devices]
            return sorted(hashers.map(file_sha256, paths))

    before, after = digests(source), digests(restored)
    table = Table("VM", "state", "disks", "SHA-256 of the disks", "equal to the source")
    table.add_row(source.name, source.state.name, str(len(before)), ", ".join(d[:12] for d in before), "")
    same = before == after
    table.add_row(
        restored.name,
        restored.state.name,
        str(len(after)),
        ", ".join(d[:12] for d in after),
        "[green]yes[/]" if same else "[red]NO[/]",
    )
    if not same or restored.state.name != "running":
        raise BingoBackupError(
            f"the restored VM {restored.name} does not match {RESTORE_VM} or is not running"
        )
    return table


def _print_summary(results: list[tuple[str, str, list[dict[str, object]], bool]]) -> None:
    table = Table("backup", "set", "VMs", "read MiB", "stored MiB", "status")
    for round_name, set_id, rows, ok in results:
        read = sum(float(str(r.get("read MiB") or 0)) for r in rows)
        stored = sum(float(str(r.get("stored MiB") or 0)) for r in rows)
        table.add_row(
            round_name, set_id, str(len(rows)), f"{read:.1f}", f"{stored:.1f}", "ok" if ok else "FAILED"
        )
    console.print(table)
    if not all(ok for *_, ok in results):
        raise BingoBackupError("some VMs were not backed up; see the tables above and the Prefect UI")
