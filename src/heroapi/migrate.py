"""Schema migrations: Alembic, run under a lock so processes that start together cannot race."""

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from heroapi.config import SQLITE_PAGE_SIZE, DatabaseURL
from heroapi.models import metadata

MIGRATIONS = Path(__file__).with_name("migrations")
# MariaDB answers `PRIMARY KEY` names with a note ("Name 'pk_hero' ignored"), which asyncmy logs
# as a warning: expected, and noise in `heroapi db upgrade`.
logging.getLogger("asyncmy").setLevel(logging.ERROR)
# One key for every heroapi process on a database (PostgreSQL advisory lock, MySQL named lock).
LOCK_NAME = "heroapi.migrate"
PG_LOCK_KEY = 0x6865726F617069  # "heroapi"


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock for longer than the timeout."""


def alembic_config(
    database: DatabaseURL | None = None,
    *,
    lock_timeout: float = 300.0,
    sqlite_page_size: int = SQLITE_PAGE_SIZE,
) -> Config:
    """Alembic's configuration (for `database`, if given), without an alembic.ini. Everything
    the migrations need comes from the arguments: nothing is read from the environment."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database is not None:
        config.attributes["database"] = database
    config.attributes["lock_timeout"] = lock_timeout
    config.attributes["sqlite_page_size"] = sqlite_page_size
    return config


def sqlalchemy_url(database: DatabaseURL) -> str:
    """The URL Alembic's engine connects with (same drivers as the service)."""
    url = database.url
    if database.backend == "mysql":
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


def connect_arguments(database: DatabaseURL) -> dict[str, Any]:
    """The driver's arguments for Alembic's engine. On PostgreSQL: statements that work through
    a transaction-pooling PgBouncer too (no statement cache, and prepared statements under names
    no other client can have; the whole migration is one transaction, so one server connection
    runs all of it)."""
    if database.backend != "postgresql":
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__heroapi_migrate_{uuid.uuid4().hex}__",
    }


@dataclass(frozen=True)
class Migrated:
    """What one upgrade or downgrade did: the revisions before and after."""

    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        before, after = ", ".join(self.before) or "base", ", ".join(self.after) or "base"
        return f"migrated {before} -> {after}" if self.changed else f"already at {after}"


def upgrade(
    database: DatabaseURL,
    revision: str = "head",
    *,
    lock_timeout: float = 300.0,
    sqlite_page_size: int = SQLITE_PAGE_SIZE,
) -> Migrated:
    """Apply the pending migrations up to `revision` (all of them by default); a SQLite file
    they create gets pages of `sqlite_page_size` bytes."""
    config = alembic_config(database, lock_timeout=lock_timeout, sqlite_page_size=sqlite_page_size)
    command.upgrade(config, revision)
    return Migrated(*config.attributes["revisions"])


def downgrade(
    database: DatabaseURL,
    revision: str,
    *,
    lock_timeout: float = 300.0,
    sqlite_page_size: int = SQLITE_PAGE_SIZE,
) -> Migrated:
    """Revert migrations down to `revision` (`base` reverts them all)."""
    config = alembic_config(database, lock_timeout=lock_timeout, sqlite_page_size=sqlite_page_size)
    command.downgrade(config, revision)
    return Migrated(*config.attributes["revisions"])


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against the migrations and the models."""

    current: tuple[str, ...]
    head: str
    differences: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return self.current == (self.head,)


def inspect(database: DatabaseURL) -> SchemaState:
    """The database's revision, the latest one, and how its schema differs from the models."""
    config = alembic_config(database)
    script = ScriptDirectory.from_config(config)
    found: dict[str, Any] = {}

    def look(_revision: Any, context: MigrationContext) -> list[Any]:
        found["current"] = tuple(context.get_current_heads())
        found["differences"] = tuple(str(diff) for diff in compare_metadata(context, metadata))
        return []

    with EnvironmentContext(config, script, fn=look, dont_mutate=True):
        script.run_env()
    head = script.get_current_head()
    return SchemaState(found["current"], head or "", found["differences"])


@contextlib.contextmanager
def migration_lock(connection: Connection, database: DatabaseURL, timeout: float) -> Iterator[None]:
    """Hold the database-wide migration lock while the block runs.

    On PostgreSQL the block is one transaction (DDL is transactional there), and the lock is a
    transaction-level advisory lock taken first in it: it ends with the transaction, committed,
    rolled back, or cut off by a killed process or a lost connection, and nothing of it outlives
    the transaction on the server connection, which behind a transaction-pooling PgBouncer
    serves other clients next. `SET LOCAL` likewise keeps `lock_timeout` to this transaction.
    """
    backend = database.backend
    if backend == "sqlite":
        with _file_lock(Path(database.sqlite_path + ".migrate-lock"), timeout):
            yield
        return
    if backend == "postgresql":
        with connection.begin():
            connection.execute(text(f"SET LOCAL lock_timeout = {int(timeout * 1000)}"))
            try:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            except Exception as error:
                raise MigrationLockTimeout(
                    f"the migration lock was held for over {timeout:g} s"
                ) from error
            yield
        return
    # MySQL/MariaDB: a named lock, which belongs to the session (DDL commits at once there).
    got = connection.execute(
        text("SELECT GET_LOCK(:name, :timeout)"), {"name": LOCK_NAME, "timeout": timeout}
    ).scalar()
    connection.commit()
    if got != 1:
        raise MigrationLockTimeout(f"the migration lock was held for over {timeout:g} s")
    unlock = text("SELECT RELEASE_LOCK(:name)").bindparams(name=LOCK_NAME)
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(unlock)
        connection.commit()


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MigrationLockTimeout(
                        f"the migration lock {path} was held for over {timeout:g} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
