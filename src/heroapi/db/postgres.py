"""PostgreSQL: asyncpg, in heroapi's own pool (no reset query when a connection comes back)."""

import contextlib
from collections.abc import AsyncIterator, Hashable
from typing import Any, cast

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

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
)
from heroapi.db.pool import PooledDatabase

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

    # Errors are translated inline, not in a `with` block: these run for every statement.

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        try:
            record = await self._raw.fetchrow(statement.sql, *statement.args(params))
        except _PG_ERRORS as error:
            raise _postgres_error(error) from error
        return None if record is None else dict(record)

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        try:
            records = await self._raw.fetch(statement.sql, *statement.args(params))
        except _PG_ERRORS as error:
            raise _postgres_error(error) from error
        return [dict(record) for record in records]

    # asyncpg's Records are sequences already: they are the values.
    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        try:
            record = await self._raw.fetchrow(statement.sql, *statement.args(params))
        except _PG_ERRORS as error:
            raise _postgres_error(error) from error
        return cast("Values | None", record)

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        try:
            records = await self._raw.fetch(statement.sql, *statement.args(params))
        except _PG_ERRORS as error:
            raise _postgres_error(error) from error
        return cast("list[Values]", records)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        try:
            status = await self._raw.execute(statement.sql, *statement.args(params))
        except _PG_ERRORS as error:
            raise _postgres_error(error) from error
        # "DELETE 3", "UPDATE 1", "INSERT 0 1": the count is the last word.
        count = status.rsplit(" ", 1)[-1]
        return ExecuteResult(int(count) if count.isdigit() else 0)


# What asyncpg raises that means something to the client: anything else is a server error.
_PG_ERRORS = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    *_PG_CONNECTION_ERRORS,
)


def _postgres_error(error: BaseException) -> Exception:
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityViolation(str(error))
    if isinstance(error, asyncpg.DataError):
        return DataRejected(str(error))
    return DatabaseUnavailable(f"lost the database connection: {error}")


@contextlib.contextmanager
def _postgres_errors() -> Any:
    try:
        yield
    except _PG_ERRORS as error:
        raise _postgres_error(error) from error


class PostgresDatabase(PooledDatabase[asyncpg.Connection]):
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
    async def snapshot(self) -> AsyncIterator[tuple[Connection, Hashable | None]]:
        # REPEATABLE READ: every statement sees the snapshot the first one took. Two equal
        # snapshots (xmin, xmax, running transactions) see the same committed data.
        async with self._checked_out() as raw:
            with _postgres_errors():
                async with raw.transaction(isolation="repeatable_read", readonly=True):
                    token = await raw.fetchval("SELECT pg_current_snapshot()::text")
                    yield self._wrap(raw), token


@contextlib.asynccontextmanager
async def _postgres_transaction(raw: asyncpg.Connection) -> AsyncIterator[None]:
    with _postgres_errors():
        async with raw.transaction():
            yield
