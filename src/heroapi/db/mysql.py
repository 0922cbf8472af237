"""MySQL/MariaDB: asyncmy, in heroapi's own pool."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncmy
import asyncmy.cursors
import asyncmy.errors
from sqlalchemy.dialects.mysql.asyncmy import MySQLDialect_asyncmy

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


class MySQLDatabase(PooledDatabase[Any]):
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
