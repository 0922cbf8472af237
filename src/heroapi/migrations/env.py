"""Alembic's environment: heroapi's metadata, its drivers, and the migration lock."""

import asyncio
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, create_engine, event, pool
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeEngine

from heroapi.config import DatabaseURL, get_settings
from heroapi.migrate import connect_arguments, migration_lock, sqlalchemy_url
from heroapi.models import metadata

config = context.config
database: DatabaseURL = config.attributes.get("database") or get_settings().database
lock_timeout: float = config.attributes.get("lock_timeout", 300.0)
# Given by `migrate.alembic_config`; read from the settings only when Alembic's own command runs.
page_size: int = config.attributes.get("sqlite_page_size") or get_settings().sqlite_page_size
target_metadata = metadata


def collation_differs(
    context: MigrationContext,
    inspected_column: Column[Any],
    metadata_column: Column[Any],
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """Whether a column's collation differs from the models' (None: let Alembic compare the rest
    of the type). Alembic alone compares collations only when both sides name one, so a column
    the models give one that the database lacks (a migration that forgot it) would pass; here
    either side naming one counts. The database names one only where it is not the default."""
    wanted = getattr(metadata_type.dialect_impl(context.dialect), "collation", None)
    found = getattr(inspected_type, "collation", None)
    return True if wanted != found else None


def configure(connection: Connection | None = None) -> None:
    context.configure(
        connection=connection,
        url=None if connection is not None else sqlalchemy_url(database),
        target_metadata=target_metadata,
        # SQLite alters tables by copying them ("batch mode").
        render_as_batch=database.backend == "sqlite",
        compare_type=collation_differs,
        literal_binds=connection is None,
    )


def run_on(connection: Connection) -> None:
    with migration_lock(connection, database, lock_timeout):
        configure(connection)
        migration = context.get_context()
        before = tuple(migration.get_current_heads())
        with context.begin_transaction():
            context.run_migrations()
        # What this process did, read under the lock (heroapi.migrate.upgrade returns it).
        config.attributes["revisions"] = (before, tuple(migration.get_current_heads()))


async def run_async() -> None:
    engine = create_async_engine(
        sqlalchemy_url(database),
        poolclass=pool.NullPool,
        connect_args=connect_arguments(database),
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def run_online() -> None:
    if database.backend == "sqlite":
        from heroapi.db.sqlite import set_page_size
        from heroapi.db.sqlite.filesystem import refuse_network_filesystem

        refuse_network_filesystem(database.sqlite_path)  # as the server's connect() does
        engine = create_engine(sqlalchemy_url(database), poolclass=pool.NullPool)
        event.listen(engine, "connect", lambda raw, _record: set_page_size(raw, page_size))
        try:
            with engine.connect() as connection:
                run_on(connection)
        finally:
            engine.dispose()
    else:
        asyncio.run(run_async())


if context.is_offline_mode():
    configure()
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
