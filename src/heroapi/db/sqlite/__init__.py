"""SQLite: the stdlib `sqlite3` module, one connection per process, called on the event loop.

- `connection.py`: the connection and its statements, and what SQLite's errors mean;
- `group_commit.py`: one-row writes that arrive together, committed together;
- `checkpoints.py`: WAL checkpoints from a thread, off the event loop;
- here: `SQLiteDatabase`, which opens the connection and hands it out.
"""

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Hashable
from typing import cast

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

from heroapi.config import DatabaseURL, Settings
from heroapi.db import (
    Connection,
    Database,
    DatabaseUnavailable,
    ExecuteResult,
    Params,
    Row,
    Values,
    stop,
)
from heroapi.db.sqlite.checkpoints import Checkpointer
from heroapi.db.sqlite.connection import (
    SQLiteConnection,
    SQLiteSession,
    set_page_size,
    sqlite_errors,
)
from heroapi.db.sqlite.group_commit import GroupCommit

__all__ = ["SQLiteDatabase", "set_page_size"]


class SQLiteDatabase(Database):
    dialect = sqlite.dialect(paramstyle="qmark")
    supports_returning = True

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self._raw: sqlite3.Connection | None = None
        self._session: SQLiteSession | None = None
        self.group_commit: GroupCommit | None = None
        self.checkpointer = Checkpointer(url.sqlite_path, settings)
        self._checkpoints: asyncio.Task[None] | None = None
        # Statements run on the event loop without awaiting, so nothing interleaves with a
        # transaction today; the lock keeps that true if a transaction ever awaits something.
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        with sqlite_errors():
            raw = sqlite3.connect(
                self.url.sqlite_path,
                timeout=self.settings.sqlite_busy_timeout,
                isolation_level=None,  # autocommit; transactions are begun explicitly
                check_same_thread=False,
                cached_statements=256,
            )
            set_page_size(raw, self.settings)  # before WAL mode writes the file's first page
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute(f"PRAGMA synchronous={self.settings.sqlite_synchronous}")
            raw.execute("PRAGMA foreign_keys=ON")
            # Deep pages read many rows: keep more of them in memory than the default 2 MiB.
            raw.execute(f"PRAGMA cache_size=-{self.settings.sqlite_cache_size_mb * 1024}")
            raw.execute(f"PRAGMA mmap_size={self.settings.sqlite_mmap_size_mb * 1024 * 1024}")
            raw.execute(f"PRAGMA busy_timeout={int(self.settings.sqlite_busy_timeout * 1000)}")
            raw.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.BACKSTOP_PAGES}")
        self._raw = raw
        connection = SQLiteConnection(self, raw)
        self._session = SQLiteSession(self._lock, connection)
        self.group_commit = GroupCommit(connection, self._lock)
        self._checkpoints = asyncio.create_task(
            self.checkpointer.run(lambda: raw.total_changes), name="wal-checkpoints"
        )

    async def close(self) -> None:
        if self._checkpoints is not None:
            await stop(self._checkpoints)
            self._checkpoints = None
            await asyncio.to_thread(self.checkpointer.close)
        if self.group_commit is not None:
            self.group_commit.close()
            self.group_commit = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
            self._session = None

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        if self._session is None:
            raise DatabaseUnavailable("the database is not connected")
        return self._session

    def _free(self) -> SQLiteConnection | None:
        """The connection, if no transaction is open on it: a statement then runs at once, with
        no await before it ends (so nothing else runs on it meanwhile), and no `async with`."""
        if self._lock.locked() or self._session is None:
            return None
        return self._session.connection

    async def fetch_one(self, clause: ClauseElement, params: Params) -> Row | None:
        connection = self._free()
        if connection is None:
            return await super().fetch_one(clause, params)
        return connection.one(self.compile(clause), params)

    async def fetch_all(self, clause: ClauseElement, params: Params) -> list[Row]:
        connection = self._free()
        if connection is None:
            return await super().fetch_all(clause, params)
        return connection.all(self.compile(clause), params)

    async def fetch_values(self, clause: ClauseElement, params: Params) -> Values | None:
        connection = self._free()
        if connection is None:
            return await super().fetch_values(clause, params)
        return connection.values(self.compile(clause), params)

    async def fetch_all_values(self, clause: ClauseElement, params: Params) -> list[Values]:
        connection = self._free()
        if connection is None:
            return await super().fetch_all_values(clause, params)
        return connection.all_values(self.compile(clause), params)

    async def write(self, clause: ClauseElement, params: Params) -> ExecuteResult:
        if self.group_commit is None:
            raise DatabaseUnavailable("the database is not connected")
        return await self.group_commit.write(self.compile(clause), params)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[tuple[Connection, Hashable | None]]:
        async with self.connection() as connection:
            raw = cast(SQLiteConnection, connection)._raw
            with sqlite_errors():
                raw.execute("BEGIN")
                try:
                    # The first read pins the transaction's snapshot. data_version changes when
                    # another connection commits, total_changes when this one writes.
                    (version,) = raw.execute("PRAGMA data_version").fetchone()
                    yield connection, (version, raw.total_changes)
                finally:
                    raw.execute("COMMIT")  # a read-only transaction: nothing to write

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as connection:
            raw = cast(SQLiteConnection, connection)._raw
            with sqlite_errors():
                raw.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                with sqlite_errors():
                    raw.execute("COMMIT")
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
