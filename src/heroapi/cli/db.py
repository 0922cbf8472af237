"""`heroapi db`: upgrade | downgrade | current | check, the schema's migrations."""

from typing import TYPE_CHECKING, Annotated

import typer

from heroapi.cli import existing, fail, load_settings
from heroapi.config import Settings

if TYPE_CHECKING:
    from heroapi.migrate import SchemaState  # Alembic: imported only when a command needs it

db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


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


@db_cli.command()
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply pending migrations (all of them by default)."""
    run_migrations(load_settings(), revision)


@db_cli.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to a revision."""
    run_migrations(load_settings(), revision, down=True)


def _schema_state() -> "SchemaState":
    """The configured database's revisions and differences (it must exist: nothing is created)."""
    from heroapi import migrate

    settings = load_settings()
    database = existing(settings.migration_database)
    try:
        return migrate.inspect(database)
    except Exception as error:
        fail(f"cannot read {database.render()}: {type(error).__name__}: {error}")


@db_cli.command()
def current() -> None:
    """Show the database's revision and the latest one."""
    state = _schema_state()
    typer.echo(f"current: {', '.join(state.current) or 'base (empty database)'}")
    typer.echo(f"latest:  {state.head}")


@db_cli.command()
def check() -> None:
    """Exit non-zero if the database is behind the migrations or differs from the models."""
    state = _schema_state()
    if not state.at_head:
        fail(f"database at {', '.join(state.current) or 'base'}, latest is {state.head}")
    if state.differences:
        fail("schema differs from the models: " + "; ".join(state.differences))
    typer.echo(f"ok: at {state.head}, schema matches the models")
