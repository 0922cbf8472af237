"""SQLite: the stdlib `sqlite3` module, one connection per process, called on the event loop."""

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any, Final, cast

from sqlalchemy.dialects import sqlite

from heroapi.config import DatabaseURL, Settings
from heroapi.db import (
    Connection,
    Database,
    DatabaseUnavailable,
    DataRejected,
    ExecuteResult,
    IntegrityViolation,
    Params,
    Row,
    Statement,
    Values,
    as_dicts,
)

logger = logging.getLogger("heroapi")


class _SQLiteConnection(Connection):
    def __init__(self, database: "SQLiteDatabase", raw: sqlite3.Connection) -> None:
        super().__init__(database)
        self._raw = raw

    def _run(self, statement: Statement, params: Params) -> sqlite3.Cursor:
        # Inline, not a context manager: this runs for every statement.
        try:
            return self._raw.execute(statement.sql, statement.args(params))
        except sqlite3.Error as error:
            raise _sqlite_error(error) from error
        except (OverflowError, UnicodeEncodeError) as error:
            raise DataRejected(str(error)) from error

    def _read(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except sqlite3.Error as error:
            raise _sqlite_error(error) from error

    def _names(self, statement: Statement, cursor: sqlite3.Cursor) -> tuple[str, ...]:
        return statement.columns or tuple(column[0] for column in cursor.description)

    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        cursor = self._run(statement, params)
        row: Values | None = self._read(cursor.fetchone)
        cursor.close()  # a RETURNING statement's cursor must be closed for it to finish
        return row

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        cursor = self._run(statement, params)
        rows: list[Values] = self._read(cursor.fetchall)
        return rows

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        cursor = self._run(statement, params)
        row = self._read(cursor.fetchone)
        cursor.close()
        return None if row is None else as_dicts(self._names(statement, cursor), (row,))[0]

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        cursor = self._run(statement, params)
        rows = self._read(cursor.fetchall)
        return as_dicts(self._names(statement, cursor), rows)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        cursor = self._run(statement, params)
        # A RETURNING statement's rows must be read for it to finish.
        self._read(cursor.fetchall)
        return ExecuteResult(cursor.rowcount, cursor.lastrowid)


def _sqlite_error(error: sqlite3.Error) -> Exception:
    """What a sqlite3 error means for the client (anything unexpected is a server error)."""
    if isinstance(error, sqlite3.IntegrityError):
        return IntegrityViolation(str(error))
    if isinstance(error, sqlite3.DataError):
        return DataRejected(str(error))
    if isinstance(error, sqlite3.OperationalError):
        # "database is locked" after busy_timeout, "unable to open database file", disk I/O
        return DatabaseUnavailable(str(error))
    return RuntimeError(f"SQLite: {error}")


@contextlib.contextmanager
def _sqlite_errors() -> Any:
    try:
        yield
    except sqlite3.Error as error:
        raise _sqlite_error(error) from error


def set_page_size(raw: Any, settings: Settings) -> None:
    """The page size a new database file is made with (a file with pages keeps its own; the
    pragma is then a no-op). Called on each connection before anything is written."""
    raw.execute(f"PRAGMA page_size={settings.sqlite_page_size}")


class _SQLiteSession:
    """`async with`: the connection, alone (plain methods: this runs once per request)."""

    __slots__ = ("_connection", "_lock")

    def __init__(self, lock: asyncio.Lock, connection: _SQLiteConnection) -> None:
        self._lock = lock
        self._connection = connection

    async def __aenter__(self) -> Connection:
        await self._lock.acquire()
        return self._connection

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class _Checkpointer:
    """Copies the write-ahead log into the database file from a thread, a few times a second.

    SQLite's own checkpoints run inside a commit, and so on the event loop, where their fsync
    stalled every request for milliseconds (post/patch p99). Here the serving connection only
    checkpoints if the log passes `BACKSTOP_PAGES` (this task stalled); PASSIVE never blocks
    readers or writers, and a checkpoint another process is running just makes this one skip.
    """

    INTERVAL: Final = 0.05
    BACKSTOP_PAGES: Final = 10_000  # ~40 MB of log

    def __init__(self, path: str, settings: Settings) -> None:
        self._path = path
        self._settings = settings
        self._raw: sqlite3.Connection | None = None
        # Held by the thread checkpointing: close() waits for a checkpoint that is under way.
        self._busy = threading.Lock()
        self.frames_copied = 0
        self.rounds = 0

    def _checkpoint(self) -> None:
        with self._busy:
            self.rounds += 1
            if self._raw is None:
                self._raw = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
                self._raw.execute(f"PRAGMA synchronous={self._settings.sqlite_synchronous}")
            _, _, copied = self._raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.frames_copied += max(copied, 0)

    def close(self) -> None:
        with self._busy:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    async def run(self, writes: Callable[[], int]) -> None:
        """Checkpoint every INTERVAL after `writes()` (rows this process changed) moved: an idle
        server wakes no thread. Other processes' writes are their own checkpointers' work."""
        checkpointed = writes()
        while True:
            await asyncio.sleep(self.INTERVAL)
            written = writes()
            if written == checkpointed:
                continue
            try:
                await asyncio.to_thread(self._checkpoint)
                checkpointed = written
            except sqlite3.Error as error:  # busy, disk full...: the next round tries again
                logger.warning("WAL checkpoint failed: %s", error)


class SQLiteDatabase(Database):
    dialect = sqlite.dialect(paramstyle="qmark")
    supports_returning = True

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self._raw: sqlite3.Connection | None = None
        self._session: _SQLiteSession | None = None
        self.checkpointer = _Checkpointer(url.sqlite_path, settings)
        self._checkpoints: asyncio.Task[None] | None = None
        # Statements run on the event loop without awaiting, so nothing interleaves with a
        # transaction today; the lock keeps that true if a transaction ever awaits something.
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        with _sqlite_errors():
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
            # Deep pages read many rows: keep them in memory (the default cache is 2 MiB).
            raw.execute(f"PRAGMA cache_size=-{self.settings.sqlite_cache_size_mb * 1024}")
            raw.execute(f"PRAGMA mmap_size={self.settings.sqlite_mmap_size_mb * 1024 * 1024}")
            raw.execute(f"PRAGMA busy_timeout={int(self.settings.sqlite_busy_timeout * 1000)}")
            raw.execute(f"PRAGMA wal_autocheckpoint={_Checkpointer.BACKSTOP_PAGES}")
        self._raw = raw
        self._session = _SQLiteSession(self._lock, _SQLiteConnection(self, raw))
        self._checkpoints = asyncio.create_task(
            self.checkpointer.run(lambda: raw.total_changes), name="wal-checkpoints"
        )

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
            await asyncio.to_thread(self.checkpointer.close)
        if self._raw is not None:
            self._raw.close()
            self._raw = None
            self._session = None

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        if self._session is None:
            raise DatabaseUnavailable("the database is not connected")
        return self._session

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[tuple[Connection, Hashable | None]]:
        async with self.connection() as connection:
            raw = cast(_SQLiteConnection, connection)._raw
            with _sqlite_errors():
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
            raw = cast(_SQLiteConnection, connection)._raw
            with _sqlite_errors():
                raw.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                with _sqlite_errors():
                    raw.execute("COMMIT")
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
