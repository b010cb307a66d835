"""`bingobackup cloud …`: register and manage BingoClouds (guide §4.2–4.3)."""

from __future__ import annotations

import typer
from rich.table import Table

from bingobackup.cli.common import authorize_command, console, parse_pairs, registry
from bingobackup.cloud.signing import DEFAULT_TIMEZONE, mask_key

app = typer.Typer(help="Register and manage BingoClouds (V7 and V9).", no_args_is_help=True)


@app.command()
def register(
    name: str = typer.Option(..., help="A name for this cloud (lowercase, used in jobs)"),
    address: str = typer.Option(..., help="IP address or host name of the BingoCloud API"),
    port: int = typer.Option(0, help="API port (default 443 with --ssl, else 80)"),
    ssl: bool = typer.Option(False, "--ssl/--no-ssl", help="Use HTTPS"),
    access_key: str = typer.Option(..., help="Access Key"),
    secret_key: str = typer.Option(
        ..., help="Secret Key (or set BINGOBACKUP_SECRET_KEY)", envvar="BINGOBACKUP_SECRET_KEY"
    ),
    backup_host: str = typer.Option(..., help="Instance id of an activated backup host in this cloud"),
    ca_file: str = typer.Option(None, help="CA bundle for a cloud with a private certificate authority"),
    no_verify_tls: bool = typer.Option(False, help="Do not verify the TLS certificate (not recommended)"),
    timezone: str = typer.Option(
        DEFAULT_TIMEZONE, help="IANA zone of the cloud's clock; request timestamps are written in it"
    ),
    version: int = typer.Option(
        None,
        "--version",
        help="BingoCloud major version, 7 or 9 (the API does not tell; default: taken as 9)",
    ),
) -> None:
    """Register a cloud; its keys are verified against the API before anything is saved."""
    from bingobackup.resources.clouds import register_cloud

    with registry() as (store, user):
        cloud = register_cloud(
            store,
            user,
            {
                "name": name,
                "address": address,
                "port": port,
                "ssl": ssl,
                "access_key": access_key,
                "secret_key": secret_key,
                "backup_host": backup_host,
                "ca_file": ca_file,
                "verify_tls": not no_verify_tls,
                "timezone": timezone,
                "version": version,
            },
        )
    console.print(
        f"Registered cloud [bold]{cloud.name}[/] ({cloud.version_text}) at {cloud.describe_connection()}, "
        f"clock in {cloud.timezone}; keys verified."
    )


@app.command("list")
def list_() -> None:
    """The clouds you may use."""
    from bingobackup.resources.clouds import list_clouds

    with registry() as (store, user):
        clouds = list_clouds(store, user)
    table = Table("name", "endpoint", "version", "timezone", "access key", "backup host", "groups", "tags")
    for c in clouds:
        table.add_row(
            c.name,
            c.endpoint,
            c.version_text,
            c.timezone,
            mask_key(c.access_key),
            c.backup_host,
            ", ".join(c.groups),
            ", ".join(f"{k}={v}" for k, v in c.tags.items()),
        )
    console.print(table)


@app.command()
def modify(
    name: str,
    new_name: str = typer.Option(None, help="Rename the cloud"),
    data_network: str = typer.Option(
        None,
        help="Refused (says why): pool traffic follows the backup host's routing; '' clears an old value",
    ),
) -> None:
    """Rename a cloud."""
    from bingobackup.resources.clouds import modify_cloud

    with registry() as (store, user):
        cloud = modify_cloud(store, user, name, new_name=new_name, data_network=data_network)
    console.print(f"Cloud [bold]{cloud.name}[/] updated.")


@app.command()
def settings(
    name: str,
    address: str = typer.Option(None),
    port: int = typer.Option(None),
    ssl: bool = typer.Option(None, "--ssl/--no-ssl"),
    access_key: str = typer.Option(None),
    secret_key: str = typer.Option(None, envvar="BINGOBACKUP_SECRET_KEY"),
    backup_host: str = typer.Option(None),
    ca_file: str = typer.Option(None),
    timezone: str = typer.Option(None, help="IANA zone of the cloud's clock, e.g. Asia/Shanghai or UTC"),
) -> None:
    """Update how a cloud is reached (address, port, SSL, keys, clock's timezone); re-verified
    before saving."""
    from bingobackup.resources.clouds import UNSET, update_cloud_settings

    with registry() as (store, user):
        cloud = update_cloud_settings(
            store,
            user,
            name,
            address=address,
            port=port,
            ssl=ssl,
            access_key=access_key,
            secret_key=secret_key,
            backup_host=backup_host,
            timezone=timezone,
            ca_file=ca_file if ca_file is not None else UNSET,
        )
    console.print(
        f"Cloud [bold]{cloud.name}[/] now at {cloud.describe_connection()}, clock in {cloud.timezone}; "
        "keys verified."
    )


@app.command()
def deregister(
    name: str, force: bool = typer.Option(False, help="Deregister even while jobs use the cloud")
) -> None:
    """Remove a cloud and its backup hosts (backup sets stay in their pools)."""
    from bingobackup.resources.clouds import deregister_cloud

    with registry() as (store, user):
        hosts = deregister_cloud(store, user, name, force=force)
    console.print(
        f"Cloud [bold]{name}[/] deregistered" + (f" with backup hosts {', '.join(hosts)}." if hosts else ".")
    )


@app.command()
def tag(
    name: str,
    add: list[str] = typer.Option([], "--add", help="KEY=VALUE label to add (repeatable)"),
    remove: list[str] = typer.Option([], "--remove", help="Label key to remove (repeatable)"),
) -> None:
    """Add or remove free-form labels on a cloud."""
    from bingobackup.resources.clouds import tag_cloud

    with registry() as (store, user):
        cloud = tag_cloud(store, user, name, add=parse_pairs(add, "label"), remove=remove)
    console.print(
        f"Cloud [bold]{cloud.name}[/] tags: "
        + (", ".join(f"{k}={v}" for k, v in cloud.tags.items()) or "none")
    )


app.command("authorize")(authorize_command("cloud", "Cloud"))
