"""SQLite: the stdlib `sqlite3` module, one connection per process, called on the event loop."""

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any, Final, cast

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

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
    stop,
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

    # Each statement runs to its end without awaiting: these are plain methods, and the async
    # ones `Connection` asks for just return what they give.

    def one(self, statement: Statement, params: Params) -> Row | None:
        cursor = self._run(statement, params)
        row = self._read(cursor.fetchone)
        cursor.close()
        return None if row is None else as_dicts(self._names(statement, cursor), (row,))[0]

    def all(self, statement: Statement, params: Params) -> list[Row]:
        cursor = self._run(statement, params)
        rows = self._read(cursor.fetchall)
        return as_dicts(self._names(statement, cursor), rows)

    def values(self, statement: Statement, params: Params) -> Values | None:
        cursor = self._run(statement, params)
        row: Values | None = self._read(cursor.fetchone)
        cursor.close()  # a RETURNING statement's cursor must be closed for it to finish
        return row

    def all_values(self, statement: Statement, params: Params) -> list[Values]:
        cursor = self._run(statement, params)
        rows: list[Values] = self._read(cursor.fetchall)
        return rows

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        return self.one(statement, params)

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        return self.all(statement, params)

    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        return self.values(statement, params)

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        return self.all_values(statement, params)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        return self.write_now(statement, params)

    async def _write(self, statement: Statement, params: Params) -> ExecuteResult:
        return self.write_now(statement, params)

    def write_now(self, statement: Statement, params: Params) -> ExecuteResult:
        cursor = self._run(statement, params)
        # A RETURNING statement's rows must be read for it to finish.
        rows = self._read(cursor.fetchall)
        return ExecuteResult(cursor.rowcount, cursor.lastrowid, rows[0] if rows else None)


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

    __slots__ = ("_lock", "connection")

    def __init__(self, lock: asyncio.Lock, connection: _SQLiteConnection) -> None:
        self._lock = lock
        self.connection = connection

    async def __aenter__(self) -> Connection:
        await self._lock.acquire()
        return self.connection

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


_Write = tuple[Statement, Params, "asyncio.Future[ExecuteResult]"]


class _GroupCommit:
    """Writes that arrive together, committed together: one transaction, one write lock, one
    set of log frames for the pages they share (a table's last page, an index's hot page).

    A write waits for the end of the event loop's current round, by which time the other
    requests that arrived with it have queued theirs. Each statement is still atomic on its own:
    a constraint that refuses one (SQLite undoes that statement alone) fails that request only.
    An error that ends the whole transaction (I/O, disk full) fails every write of the batch,
    none of which is then committed. No write is answered before its commit.
    """

    def __init__(self, connection: _SQLiteConnection, lock: asyncio.Lock) -> None:
        self._connection = connection
        self._lock = lock
        self._pending: list[_Write] = []
        self._waiting: asyncio.Task[None] | None = None
        self.batches = 0  # transactions of more than one write (tests read it)

    async def write(self, statement: Statement, params: Params) -> ExecuteResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ExecuteResult] = loop.create_future()
        self._pending.append((statement, params, future))
        if len(self._pending) == 1:
            loop.call_soon(self._commit)
        return await future

    def _commit(self) -> None:
        if self._lock.locked():
            # A transaction is open on the connection while its request awaits something:
            # these writes go in after it.
            self._waiting = asyncio.create_task(self._commit_after_lock())
            return
        self._run(self._take())

    async def _commit_after_lock(self) -> None:
        async with self._lock:
            self._run(self._take())

    def _take(self) -> list[_Write]:
        # A request cancelled while waiting has its write left out: it was never made.
        batch = [write for write in self._pending if not write[2].done()]
        self._pending = []
        return batch

    def _run(self, batch: list[_Write]) -> None:
        connection = self._connection
        if len(batch) == 1:  # alone: autocommit, no BEGIN/COMMIT
            statement, params, future = batch[0]
            try:
                future.set_result(connection.write_now(statement, params))
            except Exception as error:
                future.set_exception(error)
            return
        raw = connection._raw
        results: list[ExecuteResult | Exception] = []
        try:
            with _sqlite_errors():
                raw.execute("BEGIN IMMEDIATE")
            for statement, params, _ in batch:
                try:
                    results.append(connection.write_now(statement, params))
                except Exception as error:
                    if not raw.in_transaction:
                        raise  # SQLite ended the transaction: nothing of the batch stays
                    results.append(error)  # this statement alone was undone
            with _sqlite_errors():
                raw.execute("COMMIT")
        except Exception as error:
            if raw.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
            for _, _, future in batch:
                future.set_exception(error)
            return
        self.batches += 1
        for (_, _, future), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def close(self) -> None:
        for _, _, future in self._take():
            future.set_exception(DatabaseUnavailable("the database was closed"))


class _Checkpointer:
    """Copies the write-ahead log into the database file from a thread, a few times a second.

    SQLite's own checkpoints run inside a commit, and so on the event loop, where their fsync
    stalled every request for milliseconds (post/patch p99). Here a thread runs PASSIVE
    checkpoints, which never block readers or writers, and the serving connection keeps a
    backstop at `BACKSTOP_PAGES`. A checkpoint another process is running just makes this one
    skip.

    Under a steady stream of writes a PASSIVE checkpoint copies (and syncs) the bulk of the
    log but cannot finish it: commits add frames while it copies, and only a checkpoint that
    reaches the end lets the log start over. The log then grows to the backstop, where the
    serving connection finishes the job in a commit (the PATCH benchmark: every ~0.3 s, ~6 ms
    of fsyncs on the event loop instead of ~25 ms). Finishing it from this thread instead,
    with the connection held, was slower (docs/performance.md).
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
        self.group_commit: _GroupCommit | None = None
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
            # Deep pages read many rows: keep more of them in memory than the default 2 MiB.
            raw.execute(f"PRAGMA cache_size=-{self.settings.sqlite_cache_size_mb * 1024}")
            raw.execute(f"PRAGMA mmap_size={self.settings.sqlite_mmap_size_mb * 1024 * 1024}")
            raw.execute(f"PRAGMA busy_timeout={int(self.settings.sqlite_busy_timeout * 1000)}")
            raw.execute(f"PRAGMA wal_autocheckpoint={_Checkpointer.BACKSTOP_PAGES}")
        self._raw = raw
        connection = _SQLiteConnection(self, raw)
        self._session = _SQLiteSession(self._lock, connection)
        self.group_commit = _GroupCommit(connection, self._lock)
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

    def _free(self) -> _SQLiteConnection | None:
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
