"""`bingobackup user …`: admins and operators and their user groups (guide §1.1)."""

from __future__ import annotations

import typer
from rich.table import Table

from bingobackup.cli.common import console, registry

app = typer.Typer(help="Users (admin / operator) and their user groups.", no_args_is_help=True)


@app.command()
def add(
    name: str,
    role: str = typer.Option("operator", help="admin or operator"),
    group: list[str] = typer.Option([], "--group", help="User group (repeatable)"),
) -> None:
    """Create a user (admin). Once a user exists, commands must say who runs them (--user)."""
    from bingobackup.resources.users import create_user

    with registry() as (store, actor):
        user = create_user(store, actor, name, role, group)  # type: ignore[arg-type]
    console.print(f"User [bold]{user.name}[/] ({user.role}) groups: {', '.join(user.groups) or 'none'}")


@app.command()
def groups(name: str, group: list[str] = typer.Option([], "--group", help="User group (repeatable)")) -> None:
    """Replace a user's groups (admin)."""
    from bingobackup.resources.users import set_user_groups

    with registry() as (store, actor):
        user = set_user_groups(store, actor, name, group)
    console.print(f"User [bold]{user.name}[/] groups: {', '.join(user.groups) or 'none'}")


@app.command()
def delete(name: str) -> None:
    """Delete a user (admin)."""
    from bingobackup.resources.users import delete_user

    with registry() as (store, actor):
        delete_user(store, actor, name)
    console.print(f"User [bold]{name}[/] deleted.")


@app.command("list")
def list_() -> None:
    """Registered users."""
    with registry() as (store, _):
        users = store.list_users()
    table = Table("name", "role", "groups")
    for u in users:
        table.add_row(u.name, u.role, ", ".join(u.groups))
    console.print(table if users else "No users registered: commands run as the built-in admin.")
