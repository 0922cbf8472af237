"""What every backend is to its callers: a `Database` and its `Connection`s, both running
statements through one method, `run(statement, params, verb)`, under the verbs `crud` calls
(`StatementRunner`)."""

import asyncio
import contextlib
import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from heroapi.config import DatabaseURL, Settings
from heroapi.db.statements import (
    EXECUTE,
    FETCH_ALL,
    FETCH_ALL_VALUES,
    FETCH_ONE,
    FETCH_VALUES,
    SQL,
    WRITE,
    ExecuteResult,
    Params,
    Row,
    Statement,
    Values,
    Verb,
    compile_statement,
)

T = TypeVar("T")

# How many statements made from requests' choices a process keeps compiled (`compile_for`).
COMPILED_SHAPES = 512


class StatementRunner(ABC):
    """The verbs `crud` calls, the same on a `Connection` and on a `Database`: each compiles its
    statement and hands it to `run`, the one method a layer overrides to change how statements
    run (a pool's retry, the replicas' routing, SQLite's lock waits, a backend's driver)."""

    @abstractmethod
    def compile(self, clause: SQL) -> Statement:
        """The statement for this dialect (`Database.compile`)."""

    @abstractmethod
    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """`statement` run with `params`, its answer made into what `verb` says."""

    async def fetch_one(self, clause: SQL, params: Params) -> Row | None:
        """The first row, as a dict, or None."""
        return await self.run(self.compile(clause), params, FETCH_ONE)

    async def fetch_all(self, clause: SQL, params: Params) -> list[Row]:
        """Every row, as dicts."""
        return await self.run(self.compile(clause), params, FETCH_ALL)

    async def fetch_values(self, clause: SQL, params: Params) -> Values | None:
        """The first row's values in column order, or None: no dict is built."""
        return await self.run(self.compile(clause), params, FETCH_VALUES)

    async def fetch_all_values(self, clause: SQL, params: Params) -> list[Values]:
        """Every row's values in column order."""
        return await self.run(self.compile(clause), params, FETCH_ALL_VALUES)

    async def execute(self, clause: SQL, params: Params) -> ExecuteResult:
        """Any statement: the rows it changed."""
        return await self.run(self.compile(clause), params, EXECUTE)

    async def write(self, clause: SQL, params: Params) -> ExecuteResult:
        """An INSERT, UPDATE or DELETE of one row: the rows it changed, the id it inserted and,
        if it has a RETURNING clause, the row it returned."""
        return await self.run(self.compile(clause), params, WRITE)


class Connection(StatementRunner):
    """One connection, as handlers and `crud` see it."""

    def __init__(self, database: "Database") -> None:
        self.database = database

    def compile(self, clause: SQL) -> Statement:
        return self.database.compile(clause)

    async def write_through_other_verbs(
        self, statement: Statement, params: Params
    ) -> ExecuteResult:
        """`WRITE`, for a backend whose driver has no answer of its own for it: `EXECUTE`, or,
        with a RETURNING clause, `FETCH_VALUES` (the row returned, if one was changed)."""
        if not statement.columns:
            return await self.run(statement, params, EXECUTE)
        row = await self.run(statement, params, FETCH_VALUES)
        return ExecuteResult(0 if row is None else 1, row=row)


class Database(StatementRunner):
    """A backend's connections, opened in `connect()` and closed in `close()`.

    Its verbs run one statement on its own, in autocommit: what most reads are. A backend may
    run it without checking a connection out (SQLite does, when no transaction is open on its
    one), and may commit one-row writes that arrive together in one transaction (SQLite does:
    one commit, one lock, one set of log frames for all of them); each still succeeds or fails
    alone, and none is answered before its commit.
    """

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

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """`statement` on a connection of its own (`connection()`), in autocommit."""
        async with self.connection() as connection:
            return await connection.run(statement, params, verb)

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
            await connection.run(Statement("SELECT 1 AS ok", ()), {}, FETCH_ONE)

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
