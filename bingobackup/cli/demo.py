"""`bingobackup demo`: the main job end to end on the embedded default.

Starts (or reuses) a simulated BingoCloud and the local Prefect server in the background,
registers the cloud and its backup hosts, and shows what the cloud holds. Everything lives
under BINGOBACKUP_HOME/demo, so running it again reuses the same cloud.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer

from bingobackup.cli.background import BackgroundService, bingobackup_home, free_port
from bingobackup.cli.common import console, registry
from bingobackup.cli.resources import render_tree

DEMO_CLOUD = "demo"
DEMO_ACCESS_KEY = "DEMOACCESSKEY0001"
DEMO_GROUP = "operators"
DEMO_SIM_PORT = 18080
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

        stopped = [
            name
            for name, ok in (("simulator", stop_demo_simulator()), ("Prefect server", stop_server()))
            if ok
        ]
        console.print(f"Stopped: {', '.join(stopped) or 'nothing was running'}.")
        return
    from bingobackup.cloud.client import BingoCloudClient
    from bingobackup.resources.clouds import register_cloud, update_cloud_settings
    from bingobackup.resources.discovery import CloudTree
    from bingobackup.resources.hosts import activate_backup_host, authorize, register_backup_host

    demo_dir = bingobackup_home() / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]bingobackup demo")
    endpoint, secret_key = start_demo_simulator(demo_dir)
    console.print(f"[1/4] Simulated BingoCloud running at {endpoint} (state in {demo_dir / 'sim-state'})")

    client = BingoCloudClient(endpoint, DEMO_ACCESS_KEY, secret_key)
    tree = CloudTree.from_client(client)
    backup_hosts = {vm.instance_id: vm for vm in tree.iter_vms() if vm.name.startswith("backup-host-")}
    first_host = min(backup_hosts.values(), key=lambda vm: vm.name)

    with registry() as (store, user):
        from bingobackup.cli.prefect_server import status

        info = status()
        console.print(f"[2/4] Prefect server at {info.ui_url if info else '?'} holds registrations and runs")
        settings = {
            "address": "127.0.0.1",
            "port": int(endpoint.rsplit(":", 1)[1].strip("/")),
            "ssl": False,
            "access_key": DEMO_ACCESS_KEY,
            "secret_key": secret_key,
            "backup_host": first_host.instance_id,
        }
        if store.get_cloud(DEMO_CLOUD) is None:
            register_cloud(store, user, {"name": DEMO_CLOUD, **settings})
            action = "registered"
        else:
            update_cloud_settings(store, user, DEMO_CLOUD, **settings)  # type: ignore[arg-type]
            action = "re-verified"
        console.print(
            f"[3/4] Cloud '{DEMO_CLOUD}' {action}: Access Key {DEMO_ACCESS_KEY}, keys checked against the API"
        )
        for instance_id, vm in sorted(backup_hosts.items(), key=lambda kv: kv[1].name):
            if store.get_host(instance_id) is None:
                register_backup_host(store, user, DEMO_CLOUD, instance_id, client=client)
            activate_backup_host(store, user, instance_id)
            console.print(
                f"      backup host {vm.name} ({instance_id}, {vm.instance.os_name} {vm.instance.os_version}) "
                f"in {vm.cluster_id}: activated"
            )
        authorize(store, user, "cloud", [DEMO_CLOUD], [DEMO_GROUP])
        authorize(store, user, "host", sorted(backup_hosts), [DEMO_GROUP])
        console.print(f"      cloud and backup hosts authorized to user group '{DEMO_GROUP}'")

    console.print("[4/4] What the cloud holds:")
    console.print(render_tree(tree, f"cloud {DEMO_CLOUD} ({endpoint})", set(backup_hosts)))
    console.rule()
    console.print(
        "Next: open the Prefect UI at "
        f"{info.ui_url if info else '(bingobackup server status)'} (Blocks show the registered cloud and hosts),\n"
        f"  bingobackup resources search linux --cloud {DEMO_CLOUD}\n"
        "  bingobackup demo --stop    # stop the background simulator and Prefect server"
    )
