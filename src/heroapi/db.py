"""The connection layer: one small async interface over each backend's fastest driver.

Handlers reach the database through `Database.connection()` (autocommit, one statement at a time)
or `Database.transaction()`. Statements are SQLAlchemy Core, compiled once per dialect and cached
(see `Database.compile`); rows come back as plain dicts. Why not the ORM or an `AsyncSession`:
see docs/performance.md.

- SQLite: the stdlib `sqlite3` module, one connection per process, called directly from the event
  loop (a statement takes microseconds; a thread hop would cost more than the query). Writes take
  the write lock up front (`BEGIN IMMEDIATE`), so they wait in `busy_timeout` instead of failing.
- PostgreSQL: asyncpg, with a small pool of our own that does not reset a connection on release.
- MySQL/MariaDB: asyncmy, in the same pool.

Driver errors are translated into `DatabaseUnavailable` (connection refused or lost, pool exhausted:
the client may retry) and `IntegrityViolation` (a constraint said no).
"""

import asyncio
import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import asyncmy
import asyncmy.cursors
import asyncmy.errors
import asyncpg
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.mysql.asyncmy import MySQLDialect_asyncmy
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from heroapi.config import DatabaseURL, Settings
from heroapi.observability import POOL_CONNECTIONS

Row = dict[str, Any]
# A row's values in the statement's column order, as the driver gives them (a tuple, or an
# asyncpg Record): what hot paths render straight to JSON, without a dict per row.
Values = Sequence[Any]
Params = Mapping[str, Any]


class DatabaseError(Exception):
    """Base of the errors this layer raises."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached now (refused, lost, or every connection busy): retry later."""


class IntegrityViolation(DatabaseError):
    """A constraint of the database refused the write (unique, foreign key, not null, check)."""


class DataRejected(DatabaseError):
    """The database refused a value (bad encoding, out of range, too long) that validation let
    through: a client error, never a 500."""


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement compiled for one dialect: its SQL, the order of its positional parameters and
    the names of its result columns.

    `literals` holds the values written into the statement itself (`.values(age=0)`); the
    caller's parameters fill the named `bindparam()`s and may override a literal.
    """

    sql: str
    names: tuple[str, ...]
    literals: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()

    def args(self, params: Params) -> tuple[Any, ...]:
        if self.literals:
            params = {**self.literals, **params}
        return tuple([params[name] for name in self.names])


def as_dicts(columns: tuple[str, ...], rows: Iterable[Values]) -> list[Row]:
    return [dict(zip(columns, row)) for row in rows]  # noqa: B905 (strict=True costs 40% here)


def compile_statement(clause: ClauseElement, dialect: Dialect) -> Statement:
    compiled = cast(SQLCompiler, clause.compile(dialect=dialect))
    names = tuple(compiled.positiontup or ())
    literals = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    # What a row's values are called (SELECT or RETURNING columns; labels as given).
    columns = tuple(entry[0] for entry in compiled._result_columns)
    return Statement(str(compiled), names, literals, columns)


class Connection(ABC):
    """One connection, as handlers and `crud` see it."""

    def __init__(self, database: "Database") -> None:
        self._database = database

    async def fetch_one(self, clause: ClauseElement, params: Params) -> Row | None:
        return await self._fetch_one(self._database.compile(clause), params)

    async def fetch_all(self, clause: ClauseElement, params: Params) -> list[Row]:
        return await self._fetch_all(self._database.compile(clause), params)

    async def fetch_values(self, clause: ClauseElement, params: Params) -> Values | None:
        """The first row's values in column order, or None: no dict is built."""
        return await self._fetch_values(self._database.compile(clause), params)

    async def fetch_all_values(self, clause: ClauseElement, params: Params) -> list[Values]:
        """Every row's values in column order."""
        return await self._fetch_all_values(self._database.compile(clause), params)

    @abstractmethod
    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None: ...

    @abstractmethod
    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]: ...

    async def execute(self, clause: ClauseElement, params: Params) -> "ExecuteResult":
        return await self._execute(self._database.compile(clause), params)

    @abstractmethod
    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None: ...

    @abstractmethod
    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]: ...

    @abstractmethod
    async def _execute(self, statement: Statement, params: Params) -> "ExecuteResult": ...


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    rowcount: int
    lastrowid: int | None = None


class Database(ABC):
    """A backend's connections, opened in `connect()` and closed in `close()`."""

    dialect: Dialect
    # Whether INSERT/UPDATE ... RETURNING work (not on MySQL; MariaDB has no UPDATE ... RETURNING).
    supports_returning: bool

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self._compiled: dict[ClauseElement, Statement] = {}
        # Statements run so far by this process: how tests see that a page of users costs a
        # constant number of queries.
        self.statements_run = 0

    def compile(self, clause: ClauseElement) -> Statement:
        """The statement for this dialect (compiled the first time it is used), about to run."""
        self.statements_run += 1
        statement = self._compiled.get(clause)
        if statement is None:
            statement = self._compiled[clause] = compile_statement(clause, self.dialect)
        return statement

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection in autocommit mode: each statement is its own transaction."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection in a transaction, committed on exit, rolled back on an exception."""

    async def ping(self) -> None:
        async with self.connection() as connection:
            await connection._fetch_one(Statement("SELECT 1 AS ok", ()), {})


def create_database(settings: Settings) -> Database:
    """The `Database` for `settings.database_url`; call `connect()` before use."""
    url = settings.database
    backends: dict[str, Callable[[DatabaseURL, Settings], Database]] = {
        "sqlite": SQLiteDatabase,
        "postgresql": PostgresDatabase,
        "mysql": MySQLDatabase,
    }
    return backends[url.backend](url, settings)


# --------------------------------------------------------------------------------------- SQLite


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

    def _read(self, cursor: sqlite3.Cursor, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except sqlite3.Error as error:
            raise _sqlite_error(error) from error

    def _names(self, statement: Statement, cursor: sqlite3.Cursor) -> tuple[str, ...]:
        return statement.columns or tuple(column[0] for column in cursor.description)

    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        cursor = self._run(statement, params)
        row: Values | None = self._read(cursor, cursor.fetchone)
        cursor.close()  # a RETURNING statement's cursor must be closed for it to finish
        return row

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        cursor = self._run(statement, params)
        rows: list[Values] = self._read(cursor, cursor.fetchall)
        return rows

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        cursor = self._run(statement, params)
        row = self._read(cursor, cursor.fetchone)
        cursor.close()
        return None if row is None else as_dicts(self._names(statement, cursor), (row,))[0]

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        cursor = self._run(statement, params)
        rows = self._read(cursor, cursor.fetchall)
        return as_dicts(self._names(statement, cursor), rows)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        cursor = self._run(statement, params)
        # A RETURNING statement's rows must be read for it to finish.
        self._read(cursor, cursor.fetchall)
        return ExecuteResult(cursor.rowcount, cursor.lastrowid)


def _sqlite_error(error: sqlite3.Error) -> Exception:
    """What a sqlite3 error means for the client (anything unexpected stays as it is)."""
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


class SQLiteDatabase(Database):
    dialect = sqlite.dialect(paramstyle="qmark")
    supports_returning = True

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self._raw: sqlite3.Connection | None = None
        self._session: _SQLiteSession | None = None
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
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute(f"PRAGMA synchronous={self.settings.sqlite_synchronous}")
            raw.execute("PRAGMA foreign_keys=ON")
            # Deep pages read many rows: keep them in memory (the default cache is 2 MiB).
            raw.execute(f"PRAGMA cache_size=-{self.settings.sqlite_cache_size_mb * 1024}")
            raw.execute(f"PRAGMA mmap_size={self.settings.sqlite_mmap_size_mb * 1024 * 1024}")
            raw.execute(f"PRAGMA busy_timeout={int(self.settings.sqlite_busy_timeout * 1000)}")
        self._raw = raw
        self._session = _SQLiteSession(self._lock, _SQLiteConnection(self, raw))

    async def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
            self._session = None

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        if self._session is None:
            raise DatabaseUnavailable("the database is not connected")
        return self._session

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


# ------------------------------------------------------------------- the pool (PostgreSQL, MySQL)

RawConnection = TypeVar("RawConnection")


class _Pool(Generic[RawConnection]):
    """At most `size` connections, opened on demand and kept open.

    Unlike asyncpg's own pool it runs no reset query when a connection comes back: heroapi never
    leaves session state behind (no temporary tables, no SET), and a connection that comes back
    from a failed or cancelled request is closed instead of reused.
    """

    def __init__(
        self,
        open_connection: Callable[[], Awaitable[RawConnection]],
        close_connection: Callable[[RawConnection], Awaitable[None]],
        *,
        size: int,
        timeout: float,
    ) -> None:
        self._open = open_connection
        self._close = close_connection
        self._timeout = timeout
        self._in_use = 0
        self._slots = asyncio.Semaphore(size)
        self._idle: list[RawConnection] = []
        self._in_use_gauge = POOL_CONNECTIONS.labels("in_use")
        self._idle_gauge = POOL_CONNECTIONS.labels("idle")
        self._reported = (0, 0)

    def _report(self) -> None:
        state = (self._in_use, len(self._idle))
        if state != self._reported:  # a gauge write is a shared-memory write per worker
            self._reported = state
            self._in_use_gauge.set(state[0])
            self._idle_gauge.set(state[1])

    async def acquire(self) -> RawConnection:
        if self._slots.locked():
            try:
                # asyncio.timeout, not wait_for: no extra task per waiting request.
                async with asyncio.timeout(self._timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise DatabaseUnavailable(
                    f"no database connection free within {self._timeout:g} s"
                ) from None
        else:
            await self._slots.acquire()
        if self._idle:
            connection = self._idle.pop()
        else:
            try:
                connection = await self._open()
            except BaseException:
                self._slots.release()
                raise
        self._in_use += 1
        self._report()
        return connection

    def release(self, connection: RawConnection) -> None:
        self._idle.append(connection)
        self._in_use -= 1
        self._slots.release()
        self._report()

    async def discard(self, connection: RawConnection, *, everything_idle: bool = False) -> None:
        """Close a connection that may be broken; after a lost connection, the idle ones too."""
        doomed = [connection]
        if everything_idle:
            doomed += self._idle
            self._idle.clear()
        self._in_use -= 1
        self._slots.release()
        self._report()
        for each in doomed:
            with contextlib.suppress(Exception):
                await self._close(each)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._report()
        for connection in idle:
            with contextlib.suppress(Exception):
                await self._close(connection)


class _PooledDatabase(Database, Generic[RawConnection]):
    """A backend whose connections come from a `_Pool`."""

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self._pool: _Pool[RawConnection] = _Pool(
            self._open,
            self._close,
            size=settings.database_pool_size,
            timeout=settings.database_pool_timeout,
        )

    @abstractmethod
    async def _open(self) -> RawConnection: ...

    @abstractmethod
    async def _close(self, raw: RawConnection) -> None: ...

    @abstractmethod
    def _wrap(self, raw: RawConnection) -> Connection: ...

    @abstractmethod
    def _is_connection_error(self, error: BaseException) -> bool:
        """Whether `error` means the connection is gone (so the idle ones likely are too)."""

    @abstractmethod
    def _begin(self, raw: RawConnection) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def connect(self) -> None:
        # Open one connection now, so a wrong URL or password fails at start-up, not later.
        raw = await self._acquire()
        self._pool.release(raw)

    async def close(self) -> None:
        await self._pool.close()

    async def _acquire(self) -> RawConnection:
        try:
            return await self._pool.acquire()
        except DatabaseError:
            raise
        except Exception as error:  # refused, unknown database, bad password: all "unavailable"
            raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error

    @contextlib.asynccontextmanager
    async def _checked_out(self) -> AsyncIterator[RawConnection]:
        raw = await self._acquire()
        try:
            yield raw
        except IntegrityViolation:
            self._pool.release(raw)
            raise
        except BaseException as error:
            # Lost, cancelled mid-statement, or in an unknown state: never hand it out again.
            lost = isinstance(error, DatabaseUnavailable) or self._is_connection_error(error)
            await self._pool.discard(raw, everything_idle=lost)
            raise
        else:
            self._pool.release(raw)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self._checked_out() as raw:
            yield self._wrap(raw)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._checked_out() as raw, self._begin(raw):
            yield self._wrap(raw)


# ----------------------------------------------------------------------------------- PostgreSQL

_PG_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    ConnectionError,
    OSError,
    TimeoutError,
)


class _PostgresConnection(Connection):
    def __init__(self, database: Database, raw: asyncpg.Connection) -> None:
        super().__init__(database)
        self._raw = raw

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        with _postgres_errors():
            record = await self._raw.fetchrow(statement.sql, *statement.args(params))
        return None if record is None else dict(record)

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        with _postgres_errors():
            records = await self._raw.fetch(statement.sql, *statement.args(params))
        return [dict(record) for record in records]

    # asyncpg's Records are sequences already: they are the values.
    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        with _postgres_errors():
            record = await self._raw.fetchrow(statement.sql, *statement.args(params))
        return cast("Values | None", record)

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        with _postgres_errors():
            records = await self._raw.fetch(statement.sql, *statement.args(params))
        return cast("list[Values]", records)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        with _postgres_errors():
            status = await self._raw.execute(statement.sql, *statement.args(params))
        # "DELETE 3", "UPDATE 1", "INSERT 0 1": the count is the last word.
        count = status.rsplit(" ", 1)[-1]
        return ExecuteResult(int(count) if count.isdigit() else 0)


@contextlib.contextmanager
def _postgres_errors() -> Any:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityViolation(str(error)) from error
    except asyncpg.DataError as error:
        raise DataRejected(str(error)) from error
    except _PG_CONNECTION_ERRORS as error:
        raise DatabaseUnavailable(f"lost the database connection: {error}") from error


class PostgresDatabase(_PooledDatabase[asyncpg.Connection]):
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    supports_returning = True

    async def _open(self) -> asyncpg.Connection:
        url = self.url.url
        return await asyncpg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            timeout=self.settings.database_connect_timeout,
            # A statement that gets no answer (server hung, network cut) fails, never hangs.
            command_timeout=self.settings.database_command_timeout,
            server_settings={"application_name": "heroapi"},
        )

    async def _close(self, raw: asyncpg.Connection) -> None:
        raw.terminate()

    def _wrap(self, raw: asyncpg.Connection) -> Connection:
        return _PostgresConnection(self, raw)

    def _is_connection_error(self, error: BaseException) -> bool:
        return isinstance(error, _PG_CONNECTION_ERRORS)

    def _begin(self, raw: asyncpg.Connection) -> contextlib.AbstractAsyncContextManager[None]:
        return _postgres_transaction(raw)


@contextlib.asynccontextmanager
async def _postgres_transaction(raw: asyncpg.Connection) -> AsyncIterator[None]:
    with _postgres_errors():
        async with raw.transaction():
            yield


# -------------------------------------------------------------------------------- MySQL/MariaDB

# Client errors that mean the server is gone: can't connect, server gone away, lost connection...
_MYSQL_CONNECTION_ERROR_CODES = frozenset({2002, 2003, 2006, 2013, 2014, 2055, 1053, 1927})
_MYSQL_INTEGRITY_ERROR_CODES = frozenset({1048, 1062, 1169, 1216, 1217, 1451, 1452, 1557, 3819})
# Incorrect value, out of range, too long, truncated...
_MYSQL_DATA_ERROR_CODES = frozenset({1264, 1265, 1292, 1366, 1367, 1406, 3988})


class _MySQLConnection(Connection):
    def __init__(self, database: Database, raw: Any) -> None:
        super().__init__(database)
        self._raw = raw

    async def _run(
        self, statement: Statement, params: Params, cursor_class: type[Any] = asyncmy.cursors.Cursor
    ) -> tuple[Sequence[Any], int, int]:
        # A statement that gets no answer (server hung, network cut) fails, never hangs.
        with _mysql_errors():
            async with (
                asyncio.timeout(self._database.settings.database_command_timeout),
                self._raw.cursor(cursor_class) as cursor,
            ):
                await cursor.execute(statement.sql, statement.args(params))
                rows = await cursor.fetchall()
                return rows, cursor.rowcount, cursor.lastrowid

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        rows, _, _ = await self._run(statement, params, asyncmy.cursors.DictCursor)
        return rows[0] if rows else None

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        rows, _, _ = await self._run(statement, params, asyncmy.cursors.DictCursor)
        return list(rows)

    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        rows, _, _ = await self._run(statement, params)
        return rows[0] if rows else None

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        rows, _, _ = await self._run(statement, params)
        return list(rows)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        _, rowcount, lastrowid = await self._run(statement, params)
        return ExecuteResult(rowcount, lastrowid)


def _mysql_error_code(error: BaseException) -> int | None:
    if isinstance(error, asyncmy.errors.MySQLError) and error.args:
        code = error.args[0]
        return code if isinstance(code, int) else None
    return None


@contextlib.contextmanager
def _mysql_errors() -> Any:
    try:
        yield
    except asyncmy.errors.MySQLError as error:
        code = _mysql_error_code(error)
        if code in _MYSQL_INTEGRITY_ERROR_CODES or isinstance(error, asyncmy.errors.IntegrityError):
            raise IntegrityViolation(str(error)) from error
        if code in _MYSQL_CONNECTION_ERROR_CODES:
            raise DatabaseUnavailable(f"lost the database connection: {error}") from error
        if code in _MYSQL_DATA_ERROR_CODES or isinstance(error, asyncmy.errors.DataError):
            raise DataRejected(str(error)) from error
        raise
    except (ConnectionError, OSError, TimeoutError) as error:
        raise DatabaseUnavailable(f"lost the database connection: {error!r}") from error


class MySQLDatabase(_PooledDatabase[Any]):
    dialect = MySQLDialect_asyncmy()
    # MariaDB has INSERT ... RETURNING but not UPDATE ... RETURNING; MySQL has neither.
    supports_returning = False

    async def _open(self) -> Any:
        url = self.url.url
        query = dict(url.query)
        connect = asyncmy.connect(
            host=url.host or "localhost",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
            unix_socket=query.get("unix_socket"),
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=self.settings.database_connect_timeout,
            # Refuse bad data instead of truncating it, whatever the server's defaults.
            init_command="SET SESSION sql_mode = 'TRADITIONAL', time_zone = '+00:00'",
        )
        try:
            return await asyncio.wait_for(connect, self.settings.database_connect_timeout)
        except asyncmy.errors.MySQLError as error:
            if _mysql_error_code(error) in _MYSQL_CONNECTION_ERROR_CODES:
                raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error
            raise

    async def _close(self, raw: Any) -> None:
        raw.close()

    def _wrap(self, raw: Any) -> Connection:
        return _MySQLConnection(self, raw)

    def _is_connection_error(self, error: BaseException) -> bool:
        return _mysql_error_code(error) in _MYSQL_CONNECTION_ERROR_CODES or isinstance(
            error, ConnectionError | OSError | TimeoutError
        )

    def _begin(self, raw: Any) -> contextlib.AbstractAsyncContextManager[None]:
        return _mysql_transaction(raw)


@contextlib.asynccontextmanager
async def _mysql_transaction(raw: Any) -> AsyncIterator[None]:
    with _mysql_errors():
        await raw.begin()
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await raw.rollback()
        raise
    with _mysql_errors():
        await raw.commit()
