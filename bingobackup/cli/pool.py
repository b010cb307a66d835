"""`bingobackup pool …`: create and list pools (存储池)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from bingobackup.cli.common import authorize_command, console, registry
from bingobackup.cli.pools_index import pool_ref, remember

if TYPE_CHECKING:
    from pydantic import BaseModel

    from bingobackup.resources.models import PoolRegistration
    from bingobackup.specs.maintenance import PoolMaintenance

app = typer.Typer(help="Pools: where backup sets are stored.", no_args_is_help=True)


_SCHEDULE_HELP = (
    "daily@HH:MM | weekly:DAY,…@HH:MM | monthly:DATE|last@HH:MM | hourly:N | manual | off | {YAML}"
)
_PRUNE_OPTION = typer.Option(None, "--prune", help=f"When prune runs (default daily@01:00): {_SCHEDULE_HELP}")
_GC_OPTION = typer.Option(None, "--gc", help="When garbage collection runs (default weekly:sun@03:00)")
_VERIFY_OPTION = typer.Option(None, "--verify", help="When verify runs (default monthly:1@05:00)")
_HOST_OPTION = typer.Option(
    None,
    "--maintenance-host",
    help="Backup host whose worker runs the maintenance (default: one that reaches the pool)",
)


def _maintenance(
    current: PoolMaintenance | None, prune: str | None, gc: str | None, verify: str | None, host: str | None
) -> PoolMaintenance:
    """`current` (or the defaults) with the schedules given on the command line."""
    from bingobackup.specs.maintenance import PoolMaintenance, parse_schedule_text

    changes: dict[str, object] = {"host": host} if host else {}
    for option, text in (("prune", prune), ("gc", gc), ("verify", verify)):
        if text is not None:
            try:
                changes[option] = parse_schedule_text(text, f"--{option}")
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=f"--{option}") from None
    return (current or PoolMaintenance()).model_copy(update=changes)


def deploy_maintenance(registration: PoolRegistration, host: str | None) -> None:
    """Make the pool's maintenance schedule Prefect deployments on a backup host reaching it,
    and say what runs when; when no backup host can run them yet, say how to deploy later."""
    from bingobackup.errors import BingoBackupError
    from bingobackup.resources.pools import maintenance_host, set_pool_maintenance
    from bingobackup.specs.maintenance import MAINTENANCE_TASKS
    from deployments.maintenance import apply_pool_maintenance
    from deployments.schedules import describe_schedule

    with registry() as (store, user):
        try:
            chosen = maintenance_host(store, user, registration, host)
        except BingoBackupError as exc:
            if host:
                raise
            console.print(f"[yellow]Maintenance schedule recorded, not deployed: {exc}[/]")
            return
        if registration.maintenance.host != chosen.instance_id:
            recorded = registration.maintenance.model_copy(update={"host": chosen.instance_id})
            registration = set_pool_maintenance(store, user, registration.name, recorded)
        deployed = apply_pool_maintenance(registration.name, registration.maintenance, chosen.instance_id)
    for task in MAINTENANCE_TASKS:
        schedule = registration.maintenance.schedule_of(task)
        console.print(f"  {task}: {describe_schedule(schedule) if schedule else 'off'}")
    console.print(
        f"  {len(deployed)} maintenance deployment(s) on backup host {chosen.name} ({chosen.instance_id}); "
        "`bingobackup job list` shows their next runs"
    )


def parse_chunk_size(text: str) -> int:
    from bingobackup.specs.job import parse_size

    try:
        return parse_size(text, "--chunk-size")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--chunk-size") from None


@app.command()
def create(
    name: str = typer.Option(..., help="Pool name used in jobs (lowercase)"),
    kind: str = typer.Option("dedup", help="standard | dedup | object | lanfree | tape | optical"),
    path: Path = typer.Option(None, help="Directory of the pool (created; must not hold a pool yet)"),
    chunk_size: str = typer.Option("4MiB", help="Fixed chunk size, a power of two from 64KiB to 64MiB"),
    encrypt: bool = typer.Option(False, "--encrypt/--no-encrypt", help="AES-256-GCM with a passphrase"),
    passphrase: str = typer.Option(
        None,
        help="Passphrase of an encrypted pool (or BINGOBACKUP_POOL_PASSPHRASE)",
        envvar="BINGOBACKUP_POOL_PASSPHRASE",
    ),
    compression: str = typer.Option("fast", help="Default compression: fast (zstd) | none"),
    group: list[str] = typer.Option([], "--group", help="User group authorized to use it (repeatable)"),
    pool_format: str = typer.Option(None, "--format", help="object/lanfree: dedup (default) | standard"),
    bucket: str = typer.Option(None, help="object: the bucket (must exist)"),
    prefix: str = typer.Option("", help="object: key prefix of the pool in the bucket"),
    endpoint: str = typer.Option(None, help="object: http(s)://host:port of the S3 service"),
    region: str = typer.Option("us-east-1", help="object: region"),
    addressing: str = typer.Option("path", help="object: path | virtual (bucket.host) addressing"),
    access_key_id: str = typer.Option(None, envvar="BINGOBACKUP_S3_ACCESS_KEY_ID", help="object: access key"),
    secret_access_key: str = typer.Option(
        None, envvar="BINGOBACKUP_S3_SECRET_ACCESS_KEY", help="object: secret key (kept encrypted)"
    ),
    verify_tls: bool = typer.Option(
        True, "--verify-tls/--no-verify-tls", help="object: check the certificate"
    ),
    ca_bundle: str = typer.Option(None, help="object: PEM file of the CA that signed the endpoint"),
    conditional_writes: bool = typer.Option(
        True,
        "--conditional-writes/--no-conditional-writes",
        help="object: send If-None-Match: * so the service refuses to replace an object; turn off "
        "for a service that answers NotImplemented (a lookup before each write then)",
    ),
    object_lock: str = typer.Option(None, help="object: governance | compliance Object Lock on every object"),
    retention_days: int = typer.Option(
        0, help="object: days each object stays undeletable (with --object-lock)"
    ),
    backup_host: list[str] = typer.Option(
        [], "--backup-host", help="lanfree: id of a backup host that sees the storage (repeatable)"
    ),
    cartridge: list[str] = typer.Option([], "--cartridge", help="tape: barcode of a cartridge (repeatable)"),
    cartridge_capacity: str = typer.Option(
        "12TiB", help="tape: capacity of each cartridge (emulated library)"
    ),
    block_size: str = typer.Option("256KiB", help="tape: fixed block size"),
    drive: list[str] = typer.Option(
        [],
        "--drive",
        help="tape: a real Linux tape drive, /dev/nstN, holding the --cartridge of the same position "
        "(repeatable; untested on real hardware)",
    ),
    disc_size: str = typer.Option("bd25", help="optical: dvd | bd25 | bd50 | bd100 | a byte count"),
    output_dir: Path = typer.Option(None, help="optical: where disc images go (default PATH/images)"),
    burn_command: str = typer.Option(None, help="optical: command run with each closed disc's image path"),
    max_discs: int = typer.Option(None, help="optical: blank discs the pool may use (default: no limit)"),
    prune: str = _PRUNE_OPTION,
    gc: str = _GC_OPTION,
    verify: str = _VERIFY_OPTION,
    maintenance_host: str = _HOST_OPTION,
) -> None:
    """Create a pool on its storage and register it (admin), with its maintenance schedule
    (prune daily, GC weekly, verify monthly unless told otherwise) as Prefect deployments."""
    from bingobackup.resources.pools import create_registered_pool

    options = _kind_options(kind, locals())
    maintenance = _maintenance(None, prune, gc, verify, maintenance_host)
    with registry() as (store, user):
        pool = create_registered_pool(
            store,
            user,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            location=path,
            chunk_size=parse_chunk_size(chunk_size),
            encrypted=encrypt,
            passphrase=passphrase,
            compression=compression,
            groups=group,
            pool_format=pool_format,  # type: ignore[arg-type]
            backup_hosts=backup_host,
            options=options,
            maintenance=maintenance,
        )
    remember(pool.name, pool.location, pool.kind)
    console.print(
        f"Pool [bold]{pool.name}[/] ({pool.kind}, {pool.on_pool_format}"
        f"{', encrypted' if pool.passphrase else ''}) created at {pool.location}"
    )
    deploy_maintenance(pool, maintenance_host)


@app.command("set-maintenance")
def set_maintenance(
    name: str = typer.Argument(..., help="Pool name"),
    prune: str = _PRUNE_OPTION,
    gc: str = _GC_OPTION,
    verify: str = _VERIFY_OPTION,
    maintenance_host: str = _HOST_OPTION,
) -> None:
    """Change when a pool's prune, GC and verify run (`off` turns one off); the options not given
    keep their schedule. Applied at once to the pool's Prefect deployments (admin)."""
    from bingobackup.resources.pools import find_pool, set_pool_maintenance

    with registry() as (store, user):
        current = find_pool(store, name)
        registration = set_pool_maintenance(
            store, user, name, _maintenance(current.maintenance, prune, gc, verify, maintenance_host)
        )
    console.print(f"Pool [bold]{name}[/] maintenance schedule:")
    deploy_maintenance(registration, maintenance_host)


def _kind_options(kind: str, values: dict[str, Any]) -> BaseModel | None:
    """The options of the pool kind being created, from the `pool create` options the kind
    says are its own (pools/kinds.py); options of other kinds are not looked at."""
    from bingobackup.pools.kinds import POOL_KINDS, PoolOptionError

    spec = POOL_KINDS.get(kind)
    if spec is None:
        return None  # create_registered_pool names the kinds there are
    try:
        return spec.options_from_cli({option: values[option] for option in spec.cli_options})
    except PoolOptionError as error:
        raise typer.BadParameter(str(error), param_hint=error.option) from None


@app.command("list")
def list_() -> None:
    """Pools you may use."""
    from bingobackup.resources.pools import list_pools

    with registry() as (store, user):
        pools = list_pools(store, user)
    table = Table("name", "kind", "format", "location", "encrypted", "groups", "backup hosts")
    for p in pools:
        remember(p.name, p.location, p.kind)
        table.add_row(
            p.name,
            p.kind,
            p.on_pool_format,
            p.location,
            "yes" if p.passphrase else "no",
            ", ".join(p.groups),
            ", ".join(p.backup_hosts),
        )
    console.print(table)


@app.command()
def stats(name: str = typer.Argument(..., help="Pool name")) -> None:
    """Backup sets, logical vs stored bytes and free capacity of a pool."""
    from bingobackup.mover.chunks import human_bytes
    from bingobackup.resources.pools import pool_for, registered_pool_stats

    with registry() as (store, user):
        registration = pool_for(store, user, name)
    figures = registered_pool_stats(registration)
    media = figures.media
    table = Table("pool", "kind", "sets", "disks", "logical", "stored", "reduction", "free", "media")
    table.add_row(
        registration.name,
        registration.kind,
        str(figures.sets),
        str(figures.disks),
        human_bytes(figures.logical_bytes),
        human_bytes(figures.stored_bytes),
        f"{figures.reduction:.2f}x" if figures.reduction else "-",
        human_bytes(figures.free_bytes) if figures.free_bytes is not None else "no limit reported",
        f"{media.count} {media.kind}(s), {media.with_room} with room" if media else "-",
    )
    console.print(table)


@app.command()
def scan(
    name: str = typer.Argument(..., help="Tape or optical pool name"),
    images: list[Path] = typer.Option([], "--images", help="optical: another directory of disc images"),
) -> None:
    """Rebuild a tape or optical pool's home from its media alone: config, manifests and catalog."""
    from bingobackup.errors import BingoBackupError
    from bingobackup.pools.kinds import pool_kind
    from bingobackup.resources.pools import pool_catalog_root, pool_for
    from catalog import CatalogWriter
    from catalog.set_copy import restore_set_copies

    with registry() as (store, user):
        registration = pool_for(store, user, name)
    home = Path(registration.location)
    passphrase = registration.passphrase.get_secret_value() if registration.passphrase else None
    scan_media = pool_kind(registration.kind).scan
    if scan_media is None:
        raise BingoBackupError(
            f"Pool '{name}' is a {registration.kind} pool; only tape and optical pools are scanned."
        )
    scanned = scan_media(registration.home(), passphrase, images)
    recreated, found, pool, where = scanned.recreated, scanned.found, scanned.pool, scanned.where
    if recreated:
        console.print(f"Pool [bold]{name}[/]: recreated {', '.join(recreated)} in {home} from the media")
    console.print(
        f"Pool [bold]{name}[/]: {len(found.disks)} disk backup(s) found on {where} "
        f"({found.manifests_restored} manifest(s) restored)"
    )
    rebuilt = restore_set_copies(
        CatalogWriter(*pool_catalog_root(registration)), found.catalog_copies.values(), pool.load_manifest
    )
    console.print(
        f"Catalog: {len(rebuilt.sets)} set(s), {rebuilt.vms} VM(s), {rebuilt.disks} disk(s) rebuilt; "
        f"{len(rebuilt.already_there)} set(s) already there"
    )
    for reason in rebuilt.skipped:
        console.print(f"[yellow]not rebuilt[/]: {reason}")
    remember(name, registration.location, registration.kind)  # `sets list --pool NAME` finds it


@app.command()
def upgrade(
    name: str = typer.Argument(..., help="Pool name or directory"),
    passphrase: str = typer.Option(
        None,
        envvar="BINGOBACKUP_POOL_PASSPHRASE",
        help="Passphrase of an encrypted pool (default: the registration's)",
    ),
) -> None:
    """Move a pool to this bingobackup's on-pool format (3: every disk manifest sealed with the
    pool key, so a chunk cannot be moved to another place unnoticed; 4: every writer holds a
    pool lock, so `bingobackup gc` may run while backups do). Run it while no backup writes to
    the pool, once every backup host runs this bingobackup; running it again is harmless."""
    from bingobackup.format.constants import FORMAT_VERSION
    from bingobackup.pools import BlobStore, LocalDirBlobStore, upgrade_pool
    from bingobackup.resources.pools import pool_store

    ref = pool_ref(name)
    registration = ref.registration() if ref.kind is not None else None
    if passphrase is None and registration is not None and registration.passphrase is not None:
        passphrase = registration.passphrase.get_secret_value()
    store: BlobStore
    if ref.is_directory:
        store = LocalDirBlobStore(Path(ref.location), ref.name)
    else:
        assert registration is not None  # only registered pools live outside a directory
        store = pool_store(registration)
    before, sealed = upgrade_pool(store, passphrase)
    if before >= FORMAT_VERSION:
        console.print(f"Pool [bold]{ref.name}[/] already has format version {before}; nothing to do")
        return
    console.print(
        f"Pool [bold]{ref.name}[/]: format version {before} -> {FORMAT_VERSION}, {sealed} manifest(s) sealed"
    )


@app.command("close-disc")
def close_disc(name: str = typer.Argument(..., help="Optical pool name")) -> None:
    """Close an optical pool's open disc now: write its ISO image and run the burner."""
    from bingobackup.errors import BingoBackupError
    from bingobackup.pools.opticalpool import OpticalPool
    from bingobackup.resources.pools import open_registered_pool, pool_for

    with registry() as (store, user):
        registration = pool_for(store, user, name)
    pool = open_registered_pool(registration)
    if not isinstance(pool, OpticalPool):
        raise BingoBackupError(f"Pool '{name}' is a {registration.kind} pool; only optical pools have discs.")
    record = pool.close_disc()
    if record is None:
        console.print(f"Pool [bold]{name}[/]: no open disc holds data; nothing to close")
        return
    console.print(
        f"Pool [bold]{name}[/]: disc {record.label} closed, image {pool.discs.output / record.image} "
        f"({record.image_bytes} bytes, {len(record.files)} file(s))"
    )


app.command("authorize")(authorize_command("pool", "Pool"))
