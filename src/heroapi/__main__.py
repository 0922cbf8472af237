"""The `heroapi` command: serve, db upgrade | downgrade | current | check,
users create-superuser | unlock, version."""

import asyncio
import gc
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from heroapi import __version__
from heroapi.config import DatabaseURL, Settings, get_settings

logger = logging.getLogger("heroapi")

cli = typer.Typer(help="heroapi: the Hero and Users/Items API.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")


def fail(message: str) -> NoReturn:
    typer.secho(f"heroapi: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def describe(error: ValidationError, *, settings: bool = False) -> str:
    """A validation error in one line, without the values (they may be secrets)."""
    return "; ".join(
        _describe_one(item, settings=settings) for item in error.errors(include_input=False)
    )


def _describe_one(item: ErrorDetails, *, settings: bool) -> str:
    message = item["msg"].removeprefix("Value error, ")
    if not item["loc"]:  # a check across settings: its message starts with the variable
        return message
    return f"{_setting_name(item['loc']) if settings else item['loc'][-1]}: {message}"


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a setting is read from (`database_url` is DATABASE_URL)."""
    name = ".".join(str(part) for part in loc).upper()
    if name in ("DATABASE_URL", "HEROAPI_DATABASE_URL"):
        return "DATABASE_URL"
    return name if name.startswith("HEROAPI_") else f"HEROAPI_{name}"


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        fail(f"bad setting: {describe(error, settings=True)}")


def existing(database: DatabaseURL) -> DatabaseURL:
    """`database`, if it is there: a command that only reads or reverts never creates a SQLite
    file (a mistyped path would otherwise become an empty database)."""
    if database.backend == "sqlite" and not Path(database.sqlite_path).exists():
        fail(
            f"no SQLite database at {database.sqlite_path}: nothing to read "
            "(`heroapi db upgrade` creates one)"
        )
    return database


def run_migrations(settings: Settings, revision: str = "head", *, down: bool = False) -> None:
    from heroapi import migrate

    database = existing(settings.migration_database) if down else settings.migration_database
    action = "downgrading" if down else "upgrading"
    typer.echo(f"{action} {database.render()} to {revision} ...", err=True)
    step = migrate.downgrade if down else migrate.upgrade
    try:
        migrated = step(
            database,
            revision,
            lock_timeout=settings.migration_lock_timeout,
            sqlite_page_size=settings.sqlite_page_size,
        )
    except Exception as error:  # a user's database problem is one line, not a traceback
        fail(f"migration failed on {database.render()}: {type(error).__name__}: {error}")
    typer.echo(f"database {migrated.describe()}", err=True)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Apply pending migrations, then serve the API (docs at /docs)."""
    import uvicorn

    from heroapi.logs import configure_logging, log_config

    settings = load_settings()
    # From here on every line is JSON, uvicorn's too; a reason not to start stays one plain line.
    configure_logging(settings.log_level)
    port_problem = _cannot_listen(host, port)
    if port_problem:
        fail(port_problem)
    if workers == 1 and not reload:
        # The app is built in this process: no collection while its thousands of classes and
        # schemas are made (up to 0.1 s of the start-up, for garbage that is nearly all kept).
        # Its lifespan collects once, freezes what was loaded, and turns the collector back on.
        gc.disable()
    prepare_database(settings)
    logger.info("serving on http://%s:%d (docs at http://%s:%d/docs)", host, port, host, port)
    # Several workers add up their metrics through files in one directory, made fresh per run.
    with tempfile.TemporaryDirectory(prefix="heroapi-metrics-") as metrics_directory:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_directory)
        uvicorn.run(
            "heroapi.main:app",
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            # X-Forwarded-* are read by the app itself, from HEROAPI_TRUSTED_PROXIES only
            # (`middleware.proxies`): uvicorn's reading (from loopback by default) would
            # hide which peer sent them, and with it whether X-Forwarded-Host may be believed.
            proxy_headers=False,
            access_log=False,  # heroapi logs one JSON line per request itself
            ws="none",  # heroapi has no WebSocket route: nothing of one is imported
            timeout_graceful_shutdown=30,
            log_config=log_config(settings.log_level),
        )


def prepare_database(settings: Settings) -> None:
    """Before serving: with HEROAPI_MIGRATE_ON_START, bring the schema to the latest migration;
    without, fail in one line if the database cannot be reached.

    The usual start, on a database already up to date, costs one query and never imports
    Alembic (`revisions.schema_at_head` reads the head from the migration files). Only a database
    behind them is migrated, by `heroapi db upgrade` in a child process, so that the server (this
    process, with one worker) never holds Alembic; under the migration lock (migrate.py), one of
    several processes starting together migrates and the others find the work done. Each
    worker's lifespan checks again, and migrates if the database is somehow still behind.
    """
    from heroapi.db import DatabaseError, create_database
    from heroapi.revisions import schema_at_head

    if not settings.migrate_on_start:
        existing(settings.database)

    async def look() -> bool:
        database = create_database(settings)
        await database.connect()
        try:
            if settings.migrate_on_start:
                return await schema_at_head(database)
            await database.ping()
            return True
        finally:
            await database.close()

    try:
        ready = asyncio.run(look())
    except Exception as error:
        if settings.migrate_on_start:
            ready = False  # the migration finds out, and says in one line, what is wrong
        elif isinstance(error, DatabaseError):
            fail(f"cannot reach {settings.database.render()}: {error}")
        else:
            raise
    if not ready:
        returncode = _upgrade_in_a_child()
        if returncode != 0:
            raise typer.Exit(returncode)


def _upgrade_in_a_child() -> int:
    """`heroapi db upgrade` in a child process, its lines passed on as log lines as they come
    (its one-line failure, `heroapi: ...`, as it is)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "heroapi", "db", "upgrade"], stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    with child.stderr:
        for line in child.stderr:
            if line.startswith("heroapi: "):
                sys.stderr.write(line)
            else:
                logger.info("%s", line.rstrip("\n"))
    return child.wait()


def _cannot_listen(host: str, port: int) -> str | None:
    """Why heroapi could not listen on host:port (in use, no such address), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot listen on {host}: {error.strerror}"
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


@db_cli.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply pending migrations (all of them by default)."""
    run_migrations(load_settings(), revision)


@db_cli.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to a revision."""
    run_migrations(load_settings(), revision, down=True)


@db_cli.command()
def current() -> None:
    """Show the database's revision and the latest one."""
    from heroapi import migrate

    settings = load_settings()
    database = existing(settings.migration_database)
    try:
        state = migrate.inspect(database)
    except Exception as error:
        fail(f"cannot read {database.render()}: {type(error).__name__}: {error}")
    typer.echo(f"current: {', '.join(state.current) or 'base (empty database)'}")
    typer.echo(f"latest:  {state.head}")


@db_cli.command()
def check() -> None:
    """Exit non-zero if the database is behind the migrations or differs from the models."""
    from heroapi import migrate

    settings = load_settings()
    database = existing(settings.migration_database)
    try:
        state = migrate.inspect(database)
    except Exception as error:
        fail(f"cannot read {database.render()}: {type(error).__name__}: {error}")
    if not state.at_head:
        fail(f"database at {', '.join(state.current) or 'base'}, latest is {state.head}")
    if state.differences:
        fail("schema differs from the models: " + "; ".join(state.differences))
    typer.echo(f"ok: at {state.head}, schema matches the models")


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


@cli.command()
def version() -> None:
    """Print heroapi's version."""
    typer.echo(__version__)


def main() -> None:
    cli(prog_name="heroapi")


if __name__ == "__main__":
    main()
