"""MySQL/MariaDB: asyncmy, in heroapi's own pool.

Every round trip (a statement, BEGIN, COMMIT, ROLLBACK) gets `database_command_timeout` seconds
to be answered; past that its connection is discarded (`DatabaseTimeout`), never reused.

A lock wait that times out (1205) or a deadlock (1213) is a `TransactionConflict` (503 with
`Retry-After`). A statement of its own (autocommit) that InnoDB chose as a deadlock's victim was
rolled back whole, so it is sent again, once; in a transaction block only the whole block could
be, which this layer cannot do. A lock wait is made to end before the command timeout would
end it (see `lock_wait_timeout`): as a conflict, on a connection that is kept.
"""

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import asyncmy
import asyncmy.cursors
import asyncmy.errors
from asyncmy.constants import CLIENT
from sqlalchemy.dialects.mysql.asyncmy import MySQLDialect_asyncmy

from heroapi.config import DatabaseURL, Settings
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
    EXECUTE,
    FETCH_ALL,
    FETCH_ALL_VALUES,
    FETCH_ONE,
    FETCH_VALUES,
    SQL,
    WRITE,
    ExecuteResult,
    Params,
    Statement,
    Verb,
    answers_to_every_verb,
)

T = TypeVar("T")

_MYSQL_CONNECTION_ERROR_CODES = frozenset({2002, 2003, 2006, 2013, 2014, 2055, 1053, 1927})
_MYSQL_INTEGRITY_ERROR_CODES = frozenset({1048, 1062, 1169, 1216, 1217, 1451, 1452, 1557, 3819})
# Incorrect value, out of range, too long, truncated...
_MYSQL_DATA_ERROR_CODES = frozenset({1264, 1265, 1292, 1366, 1367, 1406, 3988})
# Statements kept prepared on each connection (a request runs one to three, of a few dozen).
_PREPARED_PER_CONNECTION = 64
_LOCK_WAIT_TIMEOUT = 1205
_DEADLOCK = 1213


class _MySQLConnection(Connection):
    def __init__(self, database: "MySQLDatabase", raw: Any) -> None:
        super().__init__(database)
        self._raw = raw
        self._timeout = database.settings.database_command_timeout
        self._transactions = database.transactions

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        if verb is WRITE:
            return cast(T, await self.write_through_other_verbs(statement, params))
        cursor_class, made_into = _ANSWERS[verb]
        rows, rowcount, lastrowid = await self._send(statement, params, cursor_class)
        return cast(T, made_into(rows, rowcount, lastrowid))

    async def _send(
        self, statement: Statement, params: Params, cursor_class: type[Any]
    ) -> tuple[Sequence[Any], int, int]:
        try:
            return await self._send_once(statement, params, cursor_class)
        except TransactionConflict as conflict:
            # Outside a transaction block the deadlock's victim was this statement alone, and
            # InnoDB rolled it back whole: nothing of it stays, so it is sent again (once).
            if (
                _mysql_error_code(conflict.__cause__) != _DEADLOCK
                or self._raw in self._transactions
            ):
                raise
        return await self._send_once(statement, params, cursor_class)

    async def _send_once(
        self, statement: Statement, params: Params, cursor_class: type[Any]
    ) -> tuple[Sequence[Any], int, int]:
        # A statement that gets no answer (server hung, network cut) fails, never hangs.
        with _mysql_errors(self._timeout):
            async with asyncio.timeout(self._timeout), self._raw.cursor(cursor_class) as cursor:
                await cursor.execute(statement.sql, statement.args(params))
                rows = await cursor.fetchall()
                return rows, cursor.rowcount, cursor.lastrowid


def _first(rows: Sequence[Any], rowcount: int, lastrowid: int) -> Any:
    return rows[0] if rows else None


def _every(rows: Sequence[Any], rowcount: int, lastrowid: int) -> list[Any]:
    return list(rows)


def _changed(rows: Sequence[Any], rowcount: int, lastrowid: int) -> ExecuteResult:
    return ExecuteResult(rowcount, lastrowid)


# Each verb's cursor (rows as dicts, or as tuples of values) and what its answer is made into.
# (`WRITE` is `EXECUTE`, or `FETCH_VALUES` with RETURNING.)
_ANSWERS: dict[Verb[Any], tuple[type[Any], Callable[[Sequence[Any], int, int], Any]]]
_ANSWERS = answers_to_every_verb(
    {
        FETCH_ONE: (asyncmy.cursors.DictCursor, _first),
        FETCH_ALL: (asyncmy.cursors.DictCursor, _every),
        FETCH_VALUES: (asyncmy.cursors.Cursor, _first),
        FETCH_ALL_VALUES: (asyncmy.cursors.Cursor, _every),
        EXECUTE: (asyncmy.cursors.Cursor, _changed),
    },
    answered_before=(WRITE,),
)


def _mysql_error_code(error: BaseException | None) -> int | None:
    if isinstance(error, asyncmy.errors.MySQLError) and error.args:
        code = error.args[0]
        return code if isinstance(code, int) else None
    return None


def _connection_lost(error: BaseException | None) -> bool:
    """Whether `error` says the connection is gone: a client error code of a lost or refused
    connection, or asyncmy's InterfaceError, which it raises (code 0, "Not connected") for a
    connection it already knows is closed, before sending anything (so on a prepared
    statement's execution, which checks before it writes to the socket itself)."""
    return _mysql_error_code(error) in _MYSQL_CONNECTION_ERROR_CODES or isinstance(
        error, asyncmy.errors.InterfaceError
    )


@contextlib.contextmanager
def _mysql_errors(timeout: float) -> Iterator[None]:
    """asyncmy's errors as this layer's; `timeout` is the command timeout that was in force."""
    try:
        yield
    except asyncmy.errors.MySQLError as error:
        code = _mysql_error_code(error)
        if code in _MYSQL_INTEGRITY_ERROR_CODES or isinstance(error, asyncmy.errors.IntegrityError):
            raise IntegrityViolation(str(error)) from error
        if _connection_lost(error):
            raise DatabaseUnavailable(f"lost the database connection: {error}") from error
        if code in (_LOCK_WAIT_TIMEOUT, _DEADLOCK):
            raise TransactionConflict(str(error)) from error
        if code in _MYSQL_DATA_ERROR_CODES or isinstance(error, asyncmy.errors.DataError):
            raise DataRejected(str(error)) from error
        raise
    except TimeoutError as error:
        raise DatabaseTimeout(f"the database did not answer within {timeout:g} s") from error
    except (ConnectionError, OSError) as error:
        raise DatabaseUnavailable(f"lost the database connection: {error!r}") from error


async def _answered(seconds: float, call: Callable[[], Awaitable[None]]) -> None:
    """`call()` (a BEGIN, COMMIT or ROLLBACK) answered within `seconds`, or a `DatabaseError`."""
    with _mysql_errors(seconds):
        async with asyncio.timeout(seconds):
            await call()


def lock_wait_timeout(command_timeout: float) -> int:
    """The `innodb_lock_wait_timeout` (whole seconds) of heroapi's sessions: a second less than
    the command timeout, so that a long lock wait ends as InnoDB's 1205 (a conflict; the
    connection is kept) rather than as a command timeout (the connection is closed, and the
    server goes on waiting for the lock until its own limit, 50 s by default)."""
    return max(1, math.ceil(command_timeout) - 1)


def _first_table(plan: Any) -> dict[str, Any] | None:
    """The first table access in an EXPLAIN FORMAT=JSON plan that estimates its rows."""
    if isinstance(plan, dict):
        if "rows" in plan and "table_name" in plan:
            return plan
        children: Iterable[Any] = plan.values()
    elif isinstance(plan, list):
        children = plan
    else:
        return None
    for child in children:
        found = _first_table(child)
        if found is not None:
            return found
    return None


# MariaDB 10.5 and later: INSERT ... RETURNING (and DELETE's), so that a write whose answer is
# its row is one round trip (`dialect.insert_returning`); no UPDATE ... RETURNING.
_MARIADB = MySQLDialect_asyncmy(is_mariadb=True)


def returns_inserted_rows(server_version: str) -> bool:
    """Whether the server of `server_version` (its handshake's) has INSERT ... RETURNING:
    MariaDB from 10.5 on; no MySQL."""
    if "mariadb" not in server_version.lower():
        return False
    numbers = server_version.removeprefix("5.5.5-").split("-")[0].split(".")
    return tuple(int(number) for number in numbers[:2] if number.isdigit()) >= (10, 5)


class MySQLDatabase(PooledDatabase[Any]):
    # MySQL's until the first connection says the server is a MariaDB with INSERT ... RETURNING.
    dialect = MySQLDialect_asyncmy()
    # MariaDB has INSERT ... RETURNING but not UPDATE ... RETURNING; MySQL has neither.
    supports_returning = False

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        # Refuse bad data instead of truncating it, whatever the server's defaults; a lock wait
        # no longer than the server's own limit, nor than the command timeout allows.
        lock_wait = lock_wait_timeout(settings.database_command_timeout)
        self._init_command = (
            "SET SESSION sql_mode = 'TRADITIONAL', time_zone = '+00:00', innodb_lock_wait_timeout"
            f" = LEAST(@@GLOBAL.innodb_lock_wait_timeout, {lock_wait})"
        )
        # The connections inside a transaction block, as opposed to autocommit.
        self.transactions: set[Any] = set()

    async def estimated_rows(self, clause: SQL, params: Params) -> int | None:
        # The optimizer's figures: rows it expects to examine, and the share of them it expects
        # the conditions to keep (InnoDB's index statistics, sampled; no row is read).
        table = _first_table(await self._plan("EXPLAIN FORMAT=JSON", clause, params))
        if table is None:  # "Impossible WHERE" and the like: the optimizer knows it is empty
            return 0
        return round(int(table["rows"]) * float(table.get("filtered", 100)) / 100)

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
            # An UPDATE's row count is the rows it matched, as on the other backends, not those
            # whose values it changed: a count of 0 means no such row, whatever was sent.
            client_flag=CLIENT.FOUND_ROWS,
            # Each statement prepared on the server the first time a connection runs it, then
            # only executed (binary protocol: no escaping, no parsing of text values): a point
            # read 88-92 -> 50-60 us of CPU in asyncmy, a 101-row page 102-105 -> 56-64 us.
            # Bounded per connection (the least recently used is closed): a pool of 20 in 4
            # workers keeps at most 5,120 of the server's `max_prepared_stmt_count` (16,382).
            stmt_cache_size=_PREPARED_PER_CONNECTION,
            connect_timeout=self.settings.database_connect_timeout,
            init_command=self._init_command,
        )
        try:
            raw = await asyncio.wait_for(connect, self.settings.database_connect_timeout)
        except asyncmy.errors.MySQLError as error:
            if _mysql_error_code(error) in _MYSQL_CONNECTION_ERROR_CODES:
                raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error
            raise
        if returns_inserted_rows(raw.get_server_info()):
            self.dialect = _MARIADB
        return raw

    async def _close(self, raw: Any) -> None:
        raw.close()

    def wrap(self, raw: Any) -> Connection:
        return _MySQLConnection(self, raw)

    def _is_connection_error(self, error: BaseException) -> bool:
        return _connection_lost(error) or isinstance(
            error, ConnectionError | OSError | TimeoutError
        )

    def _begin(self, raw: Any) -> contextlib.AbstractAsyncContextManager[None]:
        return self._transaction(raw)

    @contextlib.asynccontextmanager
    async def _transaction(self, raw: Any) -> AsyncIterator[None]:
        timeout = self.settings.database_command_timeout
        await _answered(timeout, raw.begin)
        self.transactions.add(raw)
        try:
            yield
        except BaseException as error:
            # A lost connection is discarded instead: the server rolls back what it left open.
            # A ROLLBACK that fails replaces `error`, so that the connection is discarded too.
            if not isinstance(error, DatabaseUnavailable) or isinstance(error, TransactionConflict):
                await _answered(timeout, raw.rollback)
            raise
        finally:
            self.transactions.discard(raw)
        await _answered(timeout, raw.commit)
