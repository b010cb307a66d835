"""`bingobackup catalog query|check|rebuild`, `bingobackup sets list`, `bingobackup export-disk`.

They read pools directly (no Prefect server needed): a pool is named by a path or by a name
this machine knows (see `pools_index`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.tree import Tree

from bingobackup.checksums import file_sha256
from bingobackup.cli.common import console, err_console
from bingobackup.cli.pools_index import known_pools, pool_ref

if TYPE_CHECKING:  # the catalog (DuckDB, pandas) is imported only by the commands that read it
    from catalog import CloudEntry, JobEntry
    from catalog.health import DamagedFile

catalog_app = typer.Typer(
    help="Query the backup history (Parquet catalog, DuckDB SQL).", no_args_is_help=True
)
sets_app = typer.Typer(help="Backup sets.", no_args_is_help=True)


def open_catalog(pools: list[str]):
    from catalog import Catalog

    names = pools or sorted(known_pools())
    if not names:
        from bingobackup.errors import BingoBackupError

        raise BingoBackupError("No pool known on this machine: pass --pool NAME_OR_DIR (repeatable).")
    roots = [pool_ref(n).catalog_root() for n in names]
    typed = {root[0]: name for root, name in zip(roots, names, strict=True)}  # the pool as the user named it

    def warn_damaged(pool: str, damaged: DamagedFile) -> None:
        # stderr: `--format csv|json` output stays parseable.
        from rich.markup import escape

        err_console.print(
            f"[yellow]Warning:[/] pool {escape(pool)}: skipped the damaged catalog file {escape(str(damaged))}. "
            f"Check and rebuild it with `bingobackup catalog check --pool {escape(typed[pool])}` and "
            "`catalog rebuild`.",
            highlight=False,
            soft_wrap=True,
        )

    return Catalog(roots, on_damage=warn_damaged)


def _frame_table(frame, title: str = "") -> Table:
    table = Table(title=title or None)
    for column in frame.columns:
        # Ids are copied into other commands: never wrap them.
        table.add_column(str(column), no_wrap=str(column).endswith("_id"))
    for row in frame.itertuples(index=False):
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


@catalog_app.command("query")
def query(
    sql: str,
    pool: list[str] = typer.Option([], "--pool", help="Pool name or directory (default: every known pool)"),
    output: str = typer.Option("table", "--format", help="table | csv | json"),
) -> None:
    """Run one read-only SELECT over the views backup_sets, vm_backups, disk_backups, chunks, job_runs."""
    with open_catalog(pool) as cat:
        frame = cat.query(sql)
    if output == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif output == "json":
        typer.echo(frame.to_json(orient="records", date_format="iso"))
    else:
        console.print(_frame_table(frame))


@catalog_app.command("check")
def check(pool: str = typer.Option(..., "--pool", help="Pool name or directory")) -> None:
    """Read every catalog file of a pool; list the damaged ones and those a set lacks (exit 1 if any)."""
    from rich.markup import escape

    from catalog.health import check_catalog
    from catalog.location import CatalogLocation

    name, root, filesystem = pool_ref(pool).catalog_root()
    found = check_catalog(CatalogLocation(root, filesystem))
    console.print(
        f"Pool [bold]{name}[/]: {found.files} catalog file(s) read, {len(found.committed)} committed set(s); "
        f"{len(found.damaged)} damaged, {len(found.missing)} missing",
        highlight=False,
    )
    for damaged in found.damaged:
        console.print(f"[red]damaged[/] {escape(str(damaged))}", highlight=False, soft_wrap=True)
    for missing in found.missing:
        console.print(f"[red]missing[/] {escape(str(missing))}", highlight=False, soft_wrap=True)
    for run_id, set_id in sorted(found.unrecorded_runs.items()):
        console.print(
            f"note: set {escape(set_id)} names job run {escape(run_id)}, which has no record (lost, or the "
            "set was rebuilt by `pool scan`); `catalog rebuild` writes one from the set",
            highlight=False,
            soft_wrap=True,
        )
    if not found.ok:
        console.print(
            f"Readers skip these files. Rebuild them from the pool with `bingobackup catalog rebuild --pool {pool}`."
        )
        raise typer.Exit(1)


@catalog_app.command("rebuild")
def rebuild(
    pool: str = typer.Option(..., "--pool", help="Pool name or directory"),
    passphrase: str = typer.Option(
        None, envvar="BINGOBACKUP_POOL_PASSPHRASE", help="Passphrase of an encrypted pool"
    ),
) -> None:
    """Move damaged catalog files aside and write again what they held, from the pool's manifests."""
    from rich.markup import escape

    from catalog import CatalogWriter
    from catalog.rebuild import rebuild_catalog

    ref = pool_ref(pool)
    opened = ref.open(passphrase)
    name, root, filesystem = ref.catalog_root()
    done = rebuild_catalog(
        CatalogWriter(root, filesystem), opened, format_version=opened.config.format_version
    )
    for path, target in done.moved:
        console.print(f"moved aside {path} -> {target}", highlight=False, soft_wrap=True)
    for path in done.written:
        console.print(f"rebuilt {path}", highlight=False, soft_wrap=True)
    for reason in done.not_rebuilt:
        console.print(f"[red]not rebuilt[/] {escape(reason)}", highlight=False, soft_wrap=True)
    console.print(
        f"Pool [bold]{name}[/]: {len(done.moved)} damaged file(s) moved aside, {len(done.written)} file(s) "
        f"rebuilt, {len(done.not_rebuilt)} not rebuilt",
        highlight=False,
    )
    if done.not_rebuilt:
        raise typer.Exit(1)


@sets_app.command("list")
def list_sets(
    vm: str = typer.Option(None, help="VM name or id"),
    job: str = typer.Option(None, help="Job name"),
    pool: list[str] = typer.Option([], "--pool", help="Pool name or directory (default: every known pool)"),
    since: str = typer.Option(None, help="ISO date/time, UTC"),
    until: str = typer.Option(None, help="ISO date/time, UTC"),
) -> None:
    """Backup sets, newest first, filtered by VM, job, pool and time."""
    from datetime import datetime

    with open_catalog(pool) as cat:
        frame = cat.list_sets(
            vm=vm,
            job=job,
            since=datetime.fromisoformat(since) if since else None,
            until=datetime.fromisoformat(until) if until else None,
        )
    columns = [
        c
        for c in (
            "pool",
            "set_id",
            "job_name",
            "status",
            "finished_at",
            "vm_count",
            "disk_count",
            "logical_bytes",
            "bytes_stored",
        )
        if c in frame.columns
    ]
    shown = frame[columns].copy()
    shown["verified (UTC)"] = [_verified(row) for row in frame.to_dict("records")]
    console.print(_frame_table(shown, "backup sets"))


def _verified(row: dict[str, object]) -> str:
    """The set's newest verification: when, its status, and the share read when sampled."""
    import pandas as pd

    when, status, percent = (
        row.get("last_verified_at"),
        row.get("last_verify_status"),
        row.get("last_verify_sampled_percent"),
    )
    if when is None or pd.isna(when):
        return "never"
    sample = f", {percent:g}% sample" if isinstance(percent, float) and percent < 100 else ""
    return f"{status} {pd.Timestamp(when):%Y-%m-%d %H:%M}{sample}"


@sets_app.command("tree")
def sets_tree(
    by: str = typer.Option("host", "--by", help="host (cloud → cluster → VM → points in time → disks) | job"),
    vm: str = typer.Option(None, help="Search VMs by name (case-insensitive, part of the name) or id"),
    pool: list[str] = typer.Option([], "--pool", help="Pool name or directory (default: every known pool)"),
) -> None:
    """Backup sets as a tree: by host view or job view, to choose what to restore."""
    from catalog import browse_by_host, browse_by_job

    if by not in ("host", "job"):
        raise typer.BadParameter(f"--by {by!r}: use host or job")
    with open_catalog(pool) as cat:
        tree = (
            _host_tree(browse_by_host(cat, vm=vm)) if by == "host" else _job_tree(browse_by_job(cat, vm=vm))
        )
    console.print(tree)


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _host_tree(clouds: Sequence[CloudEntry]) -> Tree:
    from bingobackup.mover.chunks import human_bytes

    root = Tree("backup sets by host" + ("" if clouds else ": none match"))
    for cloud in clouds:
        cloud_node = root.add(f"cloud [bold]{cloud.cloud}[/]")
        for cluster in cloud.clusters:
            cluster_node = cloud_node.add(f"cluster {cluster.cluster_id}")
            for vm in cluster.vms:
                vm_node = cluster_node.add(f"[bold]{vm.vm_name}[/] ({vm.vm_id})")
                for point in vm.points:
                    status = "" if point.status == "ok" else f" [red]{point.status}[/]"
                    point_node = vm_node.add(
                        f"{_when(point.started_at)}  set {point.set_id}  pool {point.pool}  "
                        f"job {point.job_name}{status}"
                    )
                    for disk in point.disks:
                        kind = "system" if disk.is_root else "data"
                        point_node.add(
                            f"{disk.device_name or '?'} {disk.volume_id} {disk.name} "
                            f"{human_bytes(disk.size_bytes)} ({kind})"
                        )
    return root


def _job_tree(jobs: Sequence[JobEntry]) -> Tree:
    from bingobackup.mover.chunks import human_bytes

    root = Tree("backup sets by job" + ("" if jobs else ": none match"))
    for job in jobs:
        job_node = root.add(f"job [bold]{job.job_name}[/]")
        for run in job.runs:
            run_node = job_node.add(
                f"{_when(run.started_at)}  run {run.run_id or '?'}  set {run.set_id}  pool {run.pool}  {run.status}"
            )
            for vm in run.vms:
                detail = f"{vm.disk_count} disk(s), {human_bytes(vm.bytes_read)} read"
                if vm.status != "ok":
                    detail = f"[red]{vm.status}[/] {vm.error}"
                run_node.add(f"[bold]{vm.vm_name}[/] ({vm.vm_id})  {detail}")
    return root


def _checked_output(output: Path, volume: str, force: bool) -> None:
    """Refuse, before anything is read or written, an output the export cannot or must not replace."""
    from bingobackup.errors import BingoBackupError

    if output.is_dir():
        raise BingoBackupError(
            f"--output {output} is a directory: give the image's file name, e.g. --output {output / volume}.raw"
        )
    parent = output.parent
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise BingoBackupError(
            f"The directory of --output {output}, {parent}, {problem}: create it or choose another path."
        )
    if output.exists() and not force:
        raise BingoBackupError(
            f"{output} already exists: pass --force to overwrite it, or choose another path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BingoBackupError(
            f"Cannot write in {parent} (the directory of --output {output}): choose another path."
        )


def export_disk(
    pool: str = typer.Option(..., help="Pool name or directory"),
    set_id: str = typer.Option(..., "--set", help="Backup set id"),
    volume: str = typer.Option(..., help="Volume id of the backed-up disk"),
    output: Path = typer.Option(
        ..., help="Raw image to write (sparse); refused if it exists, unless --force"
    ),
    passphrase: str = typer.Option(
        None, envvar="BINGOBACKUP_POOL_PASSPHRASE", help="Passphrase of an encrypted pool"
    ),
    sha256: bool = typer.Option(False, "--sha256", help="Print the SHA-256 of the image written"),
    force: bool = typer.Option(
        False, "--force", help="Overwrite --output if it exists (file or block device)"
    ),
) -> None:
    """Write a backed-up disk as a sparse raw image (every chunk verified as it is read; the
    chunks placed as the pool's sealed manifest says, which the catalog must agree with)."""
    from bingobackup.mover import RestoreChunkError
    from bingobackup.mover.restore import write_disk_from_pool

    _checked_output(output, volume, force)
    ref = pool_ref(pool)
    with open_catalog([pool]) as cat:
        indexed = cat.disk_manifest(set_id, volume)
        owner = cat.query(
            "SELECT v.vm_name FROM disk_backups d JOIN vm_backups v USING (pool, set_id, vm_id) "
            "WHERE d.set_id = $set_id AND d.volume_id = $volume",
            {"set_id": set_id, "volume": volume},
        )
    vm_name = str(owner["vm_name"][0]) if len(owner) else "?"
    opened = ref.open_for_reading(passphrase)
    label = f"VM {vm_name} disk {volume} (set {set_id})"
    manifest = opened.checked_manifest(indexed, label)
    try:
        result = write_disk_from_pool(opened, manifest, output, label=label)
    except RestoreChunkError as exc:
        with open_catalog([pool]) as cat:
            raise cat.explain_unreadable_chunk(exc, ref.name) from None
    console.print(
        f"Wrote {output} ({manifest.size_bytes} bytes, {len(manifest.chunks)} chunks) in {result.seconds:.1f} s"
    )
    if sha256:
        console.print(f"sha256 {file_sha256(output)}")
