"""The connection layer: one small async interface over each backend's fastest driver.

Handlers reach the database through `Database.connection()` (autocommit, one statement at a time)
or `Database.transaction()`. Statements are SQLAlchemy Core, compiled once per dialect and cached
(see `Database.compile`); rows come back as dicts, or as their values in column order where a hot
path renders them itself. Why not the ORM or an `AsyncSession`: see docs/performance.md.

- SQLite (`sqlite/`): the stdlib `sqlite3` module, one connection per process, called directly
  from the event loop (a statement takes microseconds; a thread hop would cost more than the
  query). Transactions take the write lock up front (`BEGIN IMMEDIATE`); a statement refused
  by another process's lock waits for it on the event loop, never inside SQLite
  (`sqlite/locking.py`).
- PostgreSQL (`postgres.py`): asyncpg, with a small pool of our own (`pool.py`) that does not
  reset a connection on release; checkouts, transactions and retries are `pooled.py`'s.
- MySQL/MariaDB (`mysql.py`): asyncmy, in the same pool.
- PostgreSQL with read replicas (`replicas.py`): the same, with reads outside a transaction sent
  to a replica that is up and not too far behind. Only created when replicas are configured: the
  other paths pay nothing for it.

A backend's module is imported when a database of its kind is created.

Driver errors are translated into `DatabaseUnavailable` (connection refused or lost, pool exhausted,
no answer in time (`DatabaseTimeout`), a lock conflict (`TransactionConflict`): the client may
retry) and `IntegrityViolation` (a constraint said no).
"""

import asyncio
import contextlib
import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from heroapi.config import DatabaseURL, Settings

Row = dict[str, Any]
# A row's values in the statement's column order, as the driver gives them (a tuple, or an
# asyncpg Record): what hot paths render straight to JSON, without a dict per row.
Values = Sequence[Any]
Params = Mapping[str, Any]


class DatabaseError(Exception):
    """Base of the errors this layer raises."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached now (refused, lost, or every connection busy): retry later."""


class DatabaseTimeout(DatabaseUnavailable):
    """No answer within `database_command_timeout`: the connection was closed, and what it had
    sent may have run on the server (so it is never sent again on another connection)."""


class TransactionConflict(DatabaseUnavailable):
    """The database gave up on a statement to settle a conflict with another transaction (a
    lock wait timed out, a deadlock, a serialization failure): nothing of it was kept, the
    connection is sound, and the same request may succeed if it is sent again."""


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


# What the fetch and execute methods take: a Core statement, or one `compile_for` compiled.
SQL = ClauseElement | Statement


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


# How many statements made from requests' choices a process keeps compiled (`compile_for`).
COMPILED_SHAPES = 512


class Connection(ABC):
    """One connection, as handlers and `crud` see it."""

    def __init__(self, database: "Database") -> None:
        self._database = database

    async def fetch_one(self, clause: SQL, params: Params) -> Row | None:
        return await self._fetch_one(self._database.compile(clause), params)

    async def fetch_all(self, clause: SQL, params: Params) -> list[Row]:
        return await self._fetch_all(self._database.compile(clause), params)

    async def fetch_values(self, clause: SQL, params: Params) -> Values | None:
        """The first row's values in column order, or None: no dict is built."""
        return await self._fetch_values(self._database.compile(clause), params)

    async def fetch_all_values(self, clause: SQL, params: Params) -> list[Values]:
        """Every row's values in column order."""
        return await self._fetch_all_values(self._database.compile(clause), params)

    async def execute(self, clause: SQL, params: Params) -> "ExecuteResult":
        return await self._execute(self._database.compile(clause), params)

    async def write(self, clause: SQL, params: Params) -> "ExecuteResult":
        """An INSERT, UPDATE or DELETE of one row: the rows it changed, the id it inserted and,
        if it has a RETURNING clause, the row it returned."""
        return await self._write(self._database.compile(clause), params)

    async def _write(self, statement: Statement, params: Params) -> "ExecuteResult":
        if not statement.columns:
            return await self._execute(statement, params)
        row = await self._fetch_values(statement, params)
        return ExecuteResult(0 if row is None else 1, row=row)

    @abstractmethod
    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None: ...

    @abstractmethod
    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]: ...

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
    # The first row a RETURNING clause gave back, as values in its column order.
    row: Values | None = None


class Database(ABC):
    """A backend's connections, opened in `connect()` and closed in `close()`."""

    dialect: Dialect
    # Whether INSERT/UPDATE ... RETURNING work (not on MySQL; MariaDB has no UPDATE ... RETURNING).
    supports_returning: bool

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self._compiled: dict[ClauseElement, Statement] = {}
        self._shapes: dict[Hashable, Statement] = {}  # in order of use, for compile_for
        # Statements run so far by this process: how tests see that a page of users costs a
        # constant number of queries.
        self.statements_run = 0

    def compile(self, clause: SQL) -> Statement:
        """The statement for this dialect (compiled the first time it is used), about to run.

        Statements built once, at import, are cached by identity, for good. One already compiled
        (by `compile_for`) passes through."""
        self.statements_run += 1
        if isinstance(clause, Statement):
            return clause
        statement = self._compiled.get(clause)
        if statement is None:
            statement = self._compiled[clause] = compile_statement(clause, self.dialect)
        return statement

    def compile_for(self, shape: Hashable, build: Callable[[], ClauseElement]) -> Statement:
        """The statement of one `shape`, built and compiled the first time it is asked for.

        For statements a request's choices make (a list's filters and order): there are too
        many possible ones to keep each, so the least recently used are forgotten past
        `COMPILED_SHAPES`."""
        statement = self._shapes.get(shape)
        if statement is None:
            statement = compile_statement(build(), self.dialect)
            if len(self._shapes) >= COMPILED_SHAPES:
                del self._shapes[next(iter(self._shapes))]
        else:
            del self._shapes[shape]  # moved to the end: the most recently used
        self._shapes[shape] = statement
        return statement

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection in autocommit mode: each statement is its own transaction.

        With read replicas, each read on it may be answered by a replica (and two reads by two
        servers): a read that must see this task's own writes does, but one that must see
        another process's latest write belongs in `transaction()`."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A connection in a transaction, committed on exit, rolled back on an exception."""

    # One statement on its own, in autocommit: what most reads are. A backend may run it
    # without checking a connection out (SQLite does, when no transaction is open on its one).

    async def fetch_one(self, clause: SQL, params: Params) -> Row | None:
        async with self.connection() as connection:
            return await connection.fetch_one(clause, params)

    async def fetch_all(self, clause: SQL, params: Params) -> list[Row]:
        async with self.connection() as connection:
            return await connection.fetch_all(clause, params)

    async def fetch_values(self, clause: SQL, params: Params) -> Values | None:
        async with self.connection() as connection:
            return await connection.fetch_values(clause, params)

    async def fetch_all_values(self, clause: SQL, params: Params) -> list[Values]:
        async with self.connection() as connection:
            return await connection.fetch_all_values(clause, params)

    async def write(self, clause: SQL, params: Params) -> ExecuteResult:
        """One row's INSERT, UPDATE or DELETE (as `Connection.write`), committed on its own.

        A backend may commit writes that arrive together in one transaction (SQLite does: one
        commit, one lock, one set of log frames for all of them); each still succeeds or fails
        alone, and none is answered before its commit.
        """
        async with self.connection() as connection:
            return await connection.write(clause, params)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[tuple[Connection, Hashable | None]]:
        """A connection whose reads all see one state of the data, and a token for that state:
        equal tokens mean nothing was written in between, by any process. None where the
        backend cannot tell cheaply (then every caller must assume the data changed)."""
        async with self.connection() as connection:
            yield connection, None

    async def estimated_rows(self, clause: SQL, params: Params) -> int | None:
        """How many rows the query planner expects `clause` (a SELECT) to return, without
        running it; None where the backend keeps no such figure (SQLite)."""
        return None

    async def _plan(self, explain: str, clause: SQL, params: Params) -> Any:
        """The JSON plan `explain` (the backend's EXPLAIN, in JSON) gives for `clause`."""
        statement = self.compile(clause)
        explained = dataclasses.replace(
            statement, sql=f"{explain} {statement.sql}", columns=("plan",)
        )
        row = await self.fetch_values(explained, params)
        assert row is not None  # EXPLAIN always answers
        return json.loads(row[0])

    def read_latest(self) -> None:
        """This task's later reads must see every write committed so far (what security checks
        read: a token's account, a login's password). Only replicas can lag: see db/replicas.py."""
        return  # every read here is on the one server, as of now

    async def ping(self) -> None:
        async with self.connection() as connection:
            await connection._fetch_one(Statement("SELECT 1 AS ok", ()), {})

    def replicas(self) -> Sequence["ReplicaState"]:
        """The read replicas' state now, for health checks and metrics (none by default)."""
        return ()


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """A read replica as operators see it: by its position in the configured list, never by
    its address (health checks are open to anyone)."""

    index: int
    # Whether its last check answered (a replica that fails a read is down until it answers).
    up: bool
    # Seconds behind the primary: now, less the newest moment whose writes it has replayed.
    # None while unknown (down, or not yet checked).
    lag: float | None
    # Up and within `replica_max_lag`: reads go to it.
    serving: bool


async def stop(task: "asyncio.Task[None]") -> None:
    """Cancel a backend's background task (checkpoints, timeouts) and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_database(settings: Settings) -> Database:
    """The `Database` for `settings.database_url`; call `connect()` before use.

    Each backend's module (and its driver) is imported here, when it is used: a process on
    SQLite never loads asyncpg or asyncmy.
    """
    url = settings.database
    if url.backend == "postgresql":
        if settings.database_replica_urls:
            from heroapi.db.replicas import ReplicatedDatabase

            return ReplicatedDatabase(url, settings)
        from heroapi.db.postgres import PostgresDatabase

        return PostgresDatabase(url, settings)
    if url.backend == "mysql":
        from heroapi.db.mysql import MySQLDatabase

        return MySQLDatabase(url, settings)
    from heroapi.db.sqlite import SQLiteDatabase

    return SQLiteDatabase(url, settings)
