"""`heroapi users`: create-superuser | unlock."""

import asyncio
import sys
import time
from typing import Annotated

import typer
from pydantic import ValidationError

from heroapi.cli import describe, fail, load_settings
from heroapi.cli.db import run_migrations
from heroapi.config import Settings

users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)


@users_cli.command("create-superuser")
def create_superuser(
    email: Annotated[str, typer.Option(prompt=True, help="The superuser's email.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a superuser; the password is asked for (or read from stdin), never an argument."""
    from heroapi.accounts import create_superuser as create
    from heroapi.db import DatabaseError, create_database
    from heroapi.models import UserCreate
    from heroapi.security import PasswordHasher

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings()
    try:
        UserCreate(email=email, password=password)
    except ValidationError as error:
        fail(describe(error))
    if len(password) < settings.password_min_length:
        fail(f"the password must be at least {settings.password_min_length} characters long")
    if settings.migrate_on_start:
        run_migrations(settings)

    async def run() -> bool:
        database = create_database(settings)
        await database.connect()
        passwords = PasswordHasher.for_settings(settings)
        try:
            return await create(database, email, password, passwords)
        finally:
            passwords.close()
            await database.close()

    try:
        created = asyncio.run(run())
    except DatabaseError as error:
        fail(f"cannot reach {settings.database.render()}: {error}")
    if not created:
        fail(f"{email} is already registered")
    typer.echo(f"superuser {email} created")


@users_cli.command("unlock")
def unlock(
    email: Annotated[str, typer.Option(help="The account's email.")],
) -> None:
    """Clear an account's failed logins, so that it can log in again at once (every server sees
    it: the count is kept in the database)."""
    from heroapi.db import DatabaseError
    from heroapi.models import normalized_email

    settings = load_settings()
    if normalized_email(email) is None:
        fail(f"not an email address: {email!r}")
    try:
        cleared = asyncio.run(_clear_failed_logins(settings, email))
    except DatabaseError as error:
        fail(f"cannot reach {settings.database.render()}: {error}")
    if cleared is None:
        fail(f"no account has the email {email}")
    quota = settings.login_failures_per_account
    if cleared >= quota:
        typer.echo(f"unlocked {email}: {cleared} failed logins cleared (the limit is {quota})")
    else:
        typer.echo(f"{email} was not locked; its {cleared} failed logins were cleared")


async def _clear_failed_logins(settings: Settings, email: str) -> int | None:
    """Forget the failed logins counted for the account `email` in the current window; how many
    there were (None: no such account)."""
    from heroapi import crud
    from heroapi.crud import auth
    from heroapi.db import create_database
    from heroapi.throttle import LOGIN_ACCOUNT, Throttle

    database = create_database(settings)
    await database.connect()
    try:
        if not await crud.email_registered(database=database, email=email):
            return None
        key = f"{LOGIN_ACCOUNT}:{Throttle.account_key(email)}"
        hits = await auth.read_hits(database=database, key=key)
        await auth.clear_hits(database=database, key=key)
    finally:
        await database.close()
    return 0 if hits is None or hits.reset_at <= time.time() else hits.count
