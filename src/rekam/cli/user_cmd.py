"""``rekam user``: accounts."""

from __future__ import annotations

import typer
from rich.table import Table

from rekam.cli.output import console, print_json, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.his.rbac import Actor, Role

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="User name (letters, digits, '.', '_', '-')"),
    role: Role = typer.Option(..., "--role", help="Role of the user"),
    display_name: str = typer.Option("", "--display-name", help="Full name shown in the app"),
) -> None:
    """Create a user with a one-time password (printed once)."""
    clinic = clinic_or_exit()
    with readable_errors():
        created = clinic.accounts.create_user(Actor.system(), name, display_name or name, role)
    console.print(f"created user [bold]{created.user.username}[/] ({created.user.role})")
    console.print(f"one-time password: [bold]{created.one_time_password}[/]  (shown only now)")


@app.command("reset-password")
def reset_password(name: str = typer.Argument(..., help="User name")) -> None:
    """Give a user a new one-time password; their sessions end."""
    clinic = clinic_or_exit()
    with readable_errors():
        password = clinic.accounts.reset_password(Actor.system(), name)
    console.print(f"new one-time password for {name}: [bold]{password}[/]  (shown only now)")


@app.command("list")
def list_users(as_json: bool = typer.Option(False, "--json")) -> None:
    """List user accounts."""
    clinic = clinic_or_exit()
    with readable_errors():
        users = clinic.accounts.list_users(Actor.system())
    if as_json:
        print_json([u.__dict__ for u in users])
        return
    table = Table(title="Users")
    for column in ("user name", "name", "role", "active", "2FA"):
        table.add_column(column)
    for u in users:
        table.add_row(u.username, u.display_name, u.role.value, str(u.active), str(u.totp_enabled))
    console.print(table)
