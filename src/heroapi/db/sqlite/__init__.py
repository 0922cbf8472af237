"""SQLite: the stdlib `sqlite3` module, one serving connection per process, called on the event
loop (a statement takes microseconds; a thread hop would cost more than the query).

- here: `SQLiteDatabase`, which opens the connection (WAL mode, its pragmas) and hands it out:
  a statement on its own runs at once on the free connection, a one-row write goes to the
  group commit, `connection()` and `transaction()` hold the connection (a transaction takes the
  write lock up front, `BEGIN IMMEDIATE`);
- `connection.py`: the connection, how it answers each verb, and what SQLite's errors mean;
  reads run under a time budget, past which they are interrupted (503);
- `group_commit.py`: one-row writes that arrive together, committed together;
- `locking.py`: a lock another process holds is waited for on the event loop, never inside
  SQLite;
- `checkpoints.py`: WAL checkpoints from a thread, with a connection of its own;
- `filesystem.py`: a database on a network filesystem refused at connect.
"""

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy.dialects import sqlite

from heroapi.config import DatabaseURL, Settings
from heroapi.db.database import Connection, Database, stop
from heroapi.db.errors import DatabaseUnavailable
from heroapi.db.sqlite.checkpoints import Checkpointer
from heroapi.db.sqlite.connection import (
    SQLiteConnection,
    SQLiteSession,
    StatementOverBudget,
    set_page_size,
    sqlite_errors,
)
from heroapi.db.sqlite.filesystem import MOUNTINFO, NetworkFilesystem, refuse_network_filesystem
from heroapi.db.sqlite.group_commit import GroupCommit
from heroapi.db.sqlite.locking import LockBusy, LockWait
from heroapi.db.statements import WRITE, Params, Statement, Verb

__all__ = ["NetworkFilesystem", "SQLiteDatabase", "StatementOverBudget", "set_page_size"]

T = TypeVar("T")


class SQLiteDatabase(Database):
    dialect = sqlite.dialect(paramstyle="qmark")
    supports_returning = True
    # Where `connect()` finds the filesystem the database is on (a test gives its own).
    mountinfo: Path = MOUNTINFO

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
        # Before sqlite3 creates a file where it must not live.
        refuse_network_filesystem(self.url.sqlite_path, self.mountinfo)
        with sqlite_errors():
            raw = sqlite3.connect(
                self.url.sqlite_path,
                # Only while setting up, before anything is served: then no busy handler.
                timeout=self.settings.sqlite_busy_timeout,
                isolation_level=None,  # autocommit; transactions are begun explicitly
                check_same_thread=False,
                cached_statements=256,
            )
            set_page_size(
                raw, self.settings.sqlite_page_size
            )  # before WAL mode writes the file's first page
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute(f"PRAGMA synchronous={self.settings.sqlite_synchronous}")
            raw.execute("PRAGMA foreign_keys=ON")
            # Deep pages read many rows: keep more of them in memory than the default 2 MiB.
            raw.execute(f"PRAGMA cache_size=-{self.settings.sqlite_cache_size_mb * 1024}")
            raw.execute(f"PRAGMA mmap_size={self.settings.sqlite_mmap_size_mb * 1024 * 1024}")
            raw.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.BACKSTOP_PAGES}")
            # A lock is waited for on the event loop, not inside SQLite (`locking.py`).
            raw.execute("PRAGMA busy_timeout=0")
        self._raw = raw
        connection = SQLiteConnection(self, raw)
        self._session = SQLiteSession(self._lock, connection)
        self.group_commit = GroupCommit(connection, self._lock, self.settings.sqlite_busy_timeout)
        self._checkpoints = asyncio.create_task(
            self.checkpointer.run(lambda: raw.total_changes), name="wal-checkpoints"
        )

    async def close(self) -> None:
        if self._checkpoints is not None:
            await stop(self._checkpoints)
            self._checkpoints = None
            await asyncio.to_thread(self.checkpointer.close)
        if self.group_commit is not None:
            await self.group_commit.close()
            self.group_commit = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
            self._session = None

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self._connected()

    def _connected(self) -> SQLiteSession:
        if self._session is None:
            raise DatabaseUnavailable("the database is not connected")
        return self._session

    def _free(self) -> SQLiteConnection | None:
        """The connection, if no transaction is open on it: a statement then runs at once, with
        no await before it ends (so nothing else runs on it meanwhile), and no `async with`."""
        if self._lock.locked() or self._session is None:
            return None
        return self._session.connection

    # The hot path: a statement on the free connection. Refused by another connection's lock
    # (rare: WAL readers do not wait for writers), it waits in `_when_free`.

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """A one-row write through the group commit; any other statement at once on the free
        connection or, while a transaction holds it, after that (`connection()`)."""
        if verb is WRITE:
            if self.group_commit is None:
                raise DatabaseUnavailable("the database is not connected")
            return cast(T, await self.group_commit.write(statement, params))
        connection = self._free()
        if connection is None:
            return await super().run(statement, params, verb)
        try:
            return connection.answer_now(statement, params, verb)
        except LockBusy:
            return await self._when_free(statement, params, verb)

    async def _when_free(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """The statement tried again after pauses on the loop, each try on the free connection
        (so never inside another request's transaction), until the wait runs out."""
        wait = LockWait(self.settings.sqlite_busy_timeout)
        while True:
            await wait.pause()
            async with self._connected() as connection:
                with contextlib.suppress(LockBusy):
                    return connection.answer_now(statement, params, verb)

    async def _hold(self, begin: Callable[[sqlite3.Connection], T]) -> tuple[SQLiteConnection, T]:
        """The connection, held (the caller releases `_lock`), and what `begin` gave.

        If another connection's lock refuses `begin` (BEGIN IMMEDIATE while another process
        writes), the connection is let go, and taken again after a pause on the loop: requests
        that only read go on meanwhile."""
        session = self._connected()
        wait: LockWait | None = None
        while True:
            await self._lock.acquire()
            raw = session.connection.raw
            try:
                with sqlite_errors():
                    return session.connection, begin(raw)
            except LockBusy:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                self._lock.release()
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                self._lock.release()
                raise
            wait = wait or LockWait(self.settings.sqlite_busy_timeout)
            await wait.pause()

    async def _commit(self, raw: sqlite3.Connection) -> None:
        """COMMIT; if readers refuse it (possible outside WAL mode), again after pauses on the
        loop, holding the connection: its transaction is open."""
        wait: LockWait | None = None
        while True:
            try:
                with sqlite_errors():
                    raw.execute("COMMIT")
                return
            except LockBusy:
                if not raw.in_transaction:
                    raise
            wait = wait or LockWait(self.settings.sqlite_busy_timeout)
            await wait.pause()

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[tuple[Connection, Hashable | None]]:
        connection, version = await self._hold(_begin_snapshot)
        raw = connection.raw
        try:
            # data_version changes when another connection commits, total_changes when this
            # one writes.
            yield connection, (version, raw.total_changes)
        finally:
            try:
                with sqlite_errors():
                    raw.execute("COMMIT")  # a read-only transaction: nothing to write
            finally:
                self._lock.release()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        connection, _ = await self._hold(_begin_immediate)
        raw = connection.raw
        connection.writing = True  # never interrupted: that would roll the whole of it back
        try:
            yield connection
            await self._commit(raw)
        finally:
            connection.writing = False
            try:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
            finally:
                self._lock.release()


def _begin_snapshot(raw: sqlite3.Connection) -> Any:
    raw.execute("BEGIN")
    # The first read pins the transaction's snapshot.
    (version,) = raw.execute("PRAGMA data_version").fetchone()
    return version


def _begin_immediate(raw: sqlite3.Connection) -> None:
    # Takes the write lock now: a transaction that reads, then writes, cannot find its
    # snapshot stale at the write (test_read_then_write_transactions_from_two_processes...).
    raw.execute("BEGIN IMMEDIATE")
