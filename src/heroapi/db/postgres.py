"""PostgreSQL: asyncpg, in heroapi's own pool (no reset query when a connection comes back).

Behind a connection pooler (PgBouncer, Supavisor, a hosted database's "transaction pooler"), a
client connection is not one server session: in transaction pooling each transaction, and each
statement outside one, may run on a different server connection, shared with other clients.
Two things then break a plain asyncpg client: its cache of named prepared statements (a name
prepared on one server connection is missing, or already taken, on the next), and anything
session-level (SET, advisory locks, temporary tables). heroapi keeps no session state, and runs
statements unnamed when `HEROAPI_DATABASE_POOLER` is `transaction`, or is `auto` (the default)
and a pooler is found at start-up: the connection's backend process id, which the server reports
at connect, differs from `pg_backend_pid()` when something in between made up its own.
`session` pooling keeps one server connection per client connection, so the cache of named
statements stays on, as on a direct connection. How each verb runs on either kind of connection
(one round trip per statement on both): `asyncpg_connections.py`.
"""

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Final, TypeVar, cast

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from heroapi.config import DatabaseURL, Settings
from heroapi.db.asyncpg_connections import STATEMENT_CACHE_SIZE as STATEMENT_CACHE_SIZE
from heroapi.db.asyncpg_connections import AsyncpgConnection, UnnamedStatements
from heroapi.db.database import Connection
from heroapi.db.errors import (
    DatabaseTimeout,
    DatabaseUnavailable,
    DataRejected,
    IntegrityViolation,
    TransactionConflict,
)
from heroapi.db.pooled import PooledDatabase
from heroapi.db.statements import (
    FETCH_VALUES,
    SQL,
    WRITE,
    Params,
    Statement,
    Verb,
)
from heroapi.db.watchdog import StatementWatchdog

logger = logging.getLogger("heroapi")
T = TypeVar("T")

# The snapshot a REPEATABLE READ transaction reads, as text (`snapshot()`'s token).
_SNAPSHOT: Final = Statement("SELECT pg_current_snapshot()::text", (), columns=("snapshot",))

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
    """Each statement is marked as waiting for an answer while it runs (the watchdog's list),
    inline: this runs for every statement, and a helper coroutine cost more than the mark."""

    def __init__(self, database: "PostgresDatabase", raw: "AsyncpgConnection") -> None:
        super().__init__(database)
        self._raw = raw
        self._answers = raw.answers
        self._waiting = database.watchdog.waiting
        self._failure = database.failure

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        if verb is WRITE:
            return cast(T, await self.write_through_other_verbs(statement, params))
        call, made_into = self._answers[verb]
        raw = self._raw
        self._waiting[raw] = time.monotonic()
        try:
            answer = await call(raw, statement.sql, *statement.args(params))
        except _PG_ERRORS as error:
            raise self._failure(raw, error) from error
        finally:
            self._waiting.pop(raw, None)
        return cast(T, made_into(answer))


# What asyncpg raises that means something to the client: anything else is a server error.
# QueryCanceledError: the watchdog's cancel (or a server-side statement_timeout) stopped it.
# TransactionRollbackError (deadlock 40P01, serialization failure 40001) and
# LockNotAvailableError (lock_timeout, 55P03): the server gave up to settle a conflict.
_PG_CONFLICTS = (asyncpg.TransactionRollbackError, asyncpg.LockNotAvailableError)
_PG_ERRORS = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    asyncpg.QueryCanceledError,
    *_PG_CONFLICTS,
    *_PG_CONNECTION_ERRORS,
)


def _postgres_error(error: BaseException) -> Exception:
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityViolation(str(error))
    if isinstance(error, asyncpg.DataError):
        return DataRejected(str(error))
    if isinstance(error, _PG_CONFLICTS):
        return TransactionConflict(f"the database gave up on a conflicting change: {error}")
    if isinstance(error, asyncpg.QueryCanceledError):
        return DatabaseUnavailable(f"the database cancelled the statement: {error}")
    return DatabaseUnavailable(f"lost the database connection: {error}")


class PostgresDatabase(PooledDatabase[AsyncpgConnection]):
    """PostgreSQL through asyncpg.

    A statement that gets no answer fails after `database_command_timeout` seconds, never hangs:
    every round trip is watched by the `StatementWatchdog` (watchdog.py), not by asyncpg's own
    `command_timeout`, a timer per statement that cost far more.
    """

    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    supports_returning = True

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self.watchdog = StatementWatchdog(
            settings.database_command_timeout, settings.database_connect_timeout
        )
        # Named prepared statements, cached per connection: not through a transaction pooler.
        self.statement_cache_size = (
            0 if settings.database_pooler == "transaction" else STATEMENT_CACHE_SIZE
        )

    async def connect(self) -> None:
        if self.settings.database_pooler == "auto":
            await self._look_for_a_pooler()
        await super().connect()
        self.watchdog.start()

    async def _look_for_a_pooler(self) -> None:
        """Find out, on a connection of its own, whether a pooler sits between heroapi and
        PostgreSQL (see the module's docstring); if one does, assume it pools transactions."""
        self.statement_cache_size = 0  # safe either way for this one connection
        try:
            raw = await self._open()
        except Exception as error:  # as PooledDatabase.connect() would report it
            raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error
        try:
            backend_pid = await raw.fetchval("SELECT pg_backend_pid()")
        finally:
            await raw.close(timeout=self.settings.database_connect_timeout)
        if backend_pid == raw.get_server_pid():
            self.statement_cache_size = STATEMENT_CACHE_SIZE
            return
        logger.info(
            "a connection pooler sits between heroapi and PostgreSQL: statements are prepared "
            "unnamed, for transaction pooling (HEROAPI_DATABASE_POOLER=session if it pools "
            "sessions)"
        )

    async def close(self) -> None:
        await self.watchdog.close()
        await super().close()

    async def _wait_for(self, raw: AsyncpgConnection, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`'s answer from `raw`, under the watchdog."""
        waiting = self.watchdog.waiting
        waiting[raw] = time.monotonic()
        try:
            return await call()
        except _PG_ERRORS as error:
            raise self.failure(raw, error) from error
        finally:
            waiting.pop(raw, None)

    def failure(self, raw: AsyncpgConnection, error: BaseException) -> Exception:
        """What `error`, raised by a round trip on `raw`, means for the client."""
        if self.watchdog.timed_out(raw):
            timeout = self.settings.database_command_timeout
            return DatabaseTimeout(f"the database did not answer within {timeout:g} s")
        return _postgres_error(error)

    async def _open(self) -> AsyncpgConnection:
        url = self.url.url
        return await asyncpg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            timeout=self.settings.database_connect_timeout,
            command_timeout=None,  # the watchdog's job (see the class)
            statement_cache_size=self.statement_cache_size,
            server_settings={"application_name": "heroapi"},
            connection_class=UnnamedStatements
            if self.statement_cache_size == 0
            else AsyncpgConnection,
        )

    async def _close(self, raw: AsyncpgConnection) -> None:
        raw.terminate()

    def wrap(self, raw: AsyncpgConnection) -> Connection:
        return _PostgresConnection(self, raw)

    def _is_connection_error(self, error: BaseException) -> bool:
        return isinstance(error, _PG_CONNECTION_ERRORS)

    def _begin(self, raw: AsyncpgConnection) -> contextlib.AbstractAsyncContextManager[None]:
        return self._transaction(raw)

    @contextlib.asynccontextmanager
    async def _transaction(self, raw: AsyncpgConnection, **options: Any) -> AsyncIterator[None]:
        transaction = raw.transaction(**options)
        await self._wait_for(raw, transaction.start)
        try:
            yield
        except BaseException:
            if not raw.is_closed():
                await self._wait_for(raw, transaction.rollback)
            raise
        await self._wait_for(raw, transaction.commit)

    async def estimated_rows(self, clause: SQL, params: Params) -> int | None:
        # The planner's row estimate for the statement's top node, from the table's statistics
        # (kept by autovacuum's ANALYZE): no row is read.
        plan = await self._plan("EXPLAIN (FORMAT JSON)", clause, params)
        return int(plan[0]["Plan"]["Plan Rows"])

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[tuple[Connection, Hashable | None]]:
        # REPEATABLE READ: every statement sees the snapshot the first one took. Two equal
        # snapshots (xmin, xmax, running transactions) see the same committed data. Through
        # `_begun`, as a transaction: a BEGIN that finds its idle connection closed is sent again.
        begin = functools.partial(self._transaction, isolation="repeatable_read", readonly=True)
        async with self._begun(begin) as raw:
            connection = self.wrap(raw)
            row = await connection.run(_SNAPSHOT, {}, FETCH_VALUES)
            assert row is not None  # the function always answers
            yield connection, row[0]
