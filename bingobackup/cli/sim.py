"""`bingobackup sim …`: the simulated BingoCloud (DESIGN.md §4)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import typer

from bingobackup.cli.common import console
from bingobackup.cloud.signing import DEFAULT_TIMEZONE, cloud_zone

app = typer.Typer(
    help="The simulated BingoCloud: a real HTTP server speaking the BingoCloud API.", no_args_is_help=True
)


@app.command()
def serve(
    state: Path = typer.Option(..., help="State directory (created with the scenario when empty)"),
    port: int = typer.Option(8080, help="TCP port on 127.0.0.1"),
    access_key: str = typer.Option(..., help="Access Key the simulator accepts"),
    secret_key: str = typer.Option(
        ..., help="Secret Key the simulator accepts", envvar="BINGOBACKUP_SIM_SECRET_KEY"
    ),
    scenario: str = typer.Option("demo", help="demo | scale: what a new state directory holds"),
    timezone: str = typer.Option(
        DEFAULT_TIMEZONE, help="IANA zone the cloud reads request timestamps in (its clock's zone)"
    ),
) -> None:
    """Serve in the foreground on 127.0.0.1 until SIGTERM/SIGINT; the state survives a restart."""
    from bingobackup.sim.server import serve_forever

    try:
        cloud_zone(timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timezone") from None
    serve_forever(
        state_dir=state,
        port=port,
        access_key=access_key,
        secret_key=secret_key,
        scenario=scenario,
        timezone=timezone,
    )


@app.command("add-vm")
def add_vm(
    state: Path = typer.Option(None, help="State directory of a stopped simulator"),
    endpoint: str = typer.Option(None, help="Or: URL of a running simulator (http://127.0.0.1:PORT/)"),
    name: str = typer.Option(..., help="VM name"),
    cluster: str = typer.Option(..., help="Cluster name, e.g. cluster-a"),
    disk: list[Path] = typer.Option(..., "--disk", help="Raw image for a disk; the first is the system disk"),
) -> None:
    """Add a VM whose volumes are copies of raw images (holes kept)."""
    images = [p.resolve() for p in disk]
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise typer.BadParameter(f"no such image: {', '.join(missing)}", param_hint="--disk")
    if (state is None) == (endpoint is None):
        raise typer.BadParameter(
            "give exactly one of --state (stopped simulator) or --endpoint (running one)"
        )
    if endpoint:
        body = json.dumps({"name": name, "cluster": cluster, "disks": [str(p) for p in images]}).encode()
        request = urllib.request.Request(
            endpoint.rstrip("/") + "/_sim/vms",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            instance_id = json.loads(response.read())["instance_id"]
    else:
        from bingobackup.sim.addvm import add_vm as add

        instance_id = add(state, name, cluster, images)
    console.print(f"Added VM [bold]{name}[/] ({instance_id}) with {len(images)} disk(s) to {cluster}.")


@app.command("write-volume")
def write_volume(
    volume: str = typer.Argument(..., help="Volume id, e.g. vol-3F9A12BC"),
    source: Path = typer.Option(..., "--from", help="File whose bytes are written into the volume"),
    offset: int = typer.Option(0, min=0, help="Byte offset in the volume"),
    state: Path = typer.Option(None, help="State directory of a stopped simulator"),
    endpoint: str = typer.Option(None, help="Or: URL of a running simulator (http://127.0.0.1:PORT/)"),
) -> None:
    """Write a file's bytes into a volume, as a VM writes its disk: snapshots taken before keep
    their bytes. The only right way to change a volume (its file may be shared with snapshots)."""
    source = source.resolve()
    if not source.is_file():
        raise typer.BadParameter(f"no such file: {source}", param_hint="--from")
    if (state is None) == (endpoint is None):
        raise typer.BadParameter(
            "give exactly one of --state (stopped simulator) or --endpoint (running one)"
        )
    if endpoint:
        body = json.dumps({"offset": offset, "source": str(source)}).encode()
        request = urllib.request.Request(
            endpoint.rstrip("/") + f"/_sim/volumes/{volume}/write",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                written = json.loads(response.read())["written"]
        except urllib.error.HTTPError as error:
            from bingobackup.sim.errors import SimulatorError

            message = json.loads(error.read()).get("error", error.reason)
            raise SimulatorError(f"cannot write volume {volume}: {message}") from None
    else:
        from bingobackup.sim.layers import write_volume_offline

        written = write_volume_offline(state, volume, offset, source)
    console.print(f"Wrote {written} bytes into {volume} at offset {offset}.")
