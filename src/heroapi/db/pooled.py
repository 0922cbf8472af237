"""The server databases (PostgreSQL, MySQL/MariaDB) over a `Pool`: checkouts, transactions,
and what happens to a connection a round trip failed on.

A connection the server closed while it sat idle in the pool (a restart, a failover, the
server's idle timeout) never costs a client a failed request: the first round trip of a checkout
(an autocommit checkout's first statement, a transaction's BEGIN) that finds it closed is sent
again, once, on a new connection, and the other idle connections, likely closed too, are dropped.
A server that closed the connection while it was idle never saw that round trip. (The one
window left: a server that dies between running an autocommit statement and answering it; the
statement then runs twice, as it would if the client retried the request.)

Nothing is checked before a checkout (a ping would be a round trip on every request), and
nothing is sent again that may have followed work the database kept: a later statement, a
COMMIT, or a round trip that got no answer in time (`DatabaseTimeout`: it may still be running).
"""

import contextlib
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from heroapi.config import DatabaseURL, Settings
from heroapi.db.database import Connection, Database
from heroapi.db.errors import (
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    IntegrityViolation,
    TransactionConflict,
)
from heroapi.db.pool import Pool, RawConnection
from heroapi.db.statements import Params, Statement, Verb

T = TypeVar("T")


class PooledDatabase(Database, Generic[RawConnection]):
    """A backend whose connections come from a `Pool`."""

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self._pool: Pool[RawConnection] = Pool(
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
    def wrap(self, raw: RawConnection) -> Connection:
        """The backend's `Connection` over `raw`, a connection checked out of the pool."""

    @abstractmethod
    def _is_connection_error(self, error: BaseException) -> bool:
        """Whether `error` means the connection is gone (so the idle ones likely are too)."""

    @abstractmethod
    def _begin(self, raw: RawConnection) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def connect(self) -> None:
        # Open one connection now, so a wrong URL or password fails at start-up, not later.
        raw = await self.acquire()
        self._pool.release(raw)

    async def close(self) -> None:
        await self._pool.close()

    async def acquire(self) -> RawConnection:
        """A connection checked out of the pool, for `give_back` to return."""
        try:
            return await self._pool.acquire()
        except DatabaseError:
            raise
        except Exception as error:  # refused, unknown database, bad password: all "unavailable"
            raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error

    async def give_back(self, raw: RawConnection, error: BaseException | None) -> None:
        """Return `raw` to the pool after its checkout ended with `error` (None: it went well);
        or close it, if the error may have left it broken."""
        # A refused write or a lock conflict leaves the connection sound (its transaction, if
        # any, was rolled back on the way out).
        if error is None or isinstance(error, IntegrityViolation | TransactionConflict):
            self._pool.release(raw)
            return
        # Lost, cancelled mid-statement, or in an unknown state: never hand it out again.
        lost = isinstance(error, DatabaseUnavailable) or self._is_connection_error(error)
        await self._pool.discard(raw, everything_idle=lost)

    def closed_before_use(self, error: BaseException, since: float) -> bool:
        """Whether `error`, raised by a checkout's first round trip (sent at `since`, in
        `time.monotonic()` seconds), says the connection was closed before it: then nothing of
        the request reached the database, and it may be sent again on another connection.

        A timeout never says so (what was sent may be running), whatever the backend calls it:
        PostgreSQL's watchdog closes a connection that got no answer, and the statement fails as
        on any closed connection, only after the command timeout. A connection that was closed
        already fails at once.
        """
        if isinstance(error, DatabaseTimeout | TransactionConflict | TimeoutError):
            return False
        if time.monotonic() - since >= self.settings.database_command_timeout:
            return False
        return isinstance(error, DatabaseUnavailable) or self._is_connection_error(error)

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return _Autocommit(self)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._begun(self._begin) as raw:
            yield self.wrap(raw)

    def _begun(
        self, begin: Callable[[RawConnection], contextlib.AbstractAsyncContextManager[None]]
    ) -> "_Begun[RawConnection]":
        """`async with`: a checked-out connection in the transaction `begin(raw)` opens (and
        ends on exit). A backend's own kinds of transaction (a read-only snapshot) use it too."""
        return _Begun(self, begin)


class _Begun(Generic[RawConnection]):
    """`async with`: a pooled connection in a transaction, given back (or discarded) on exit.

    A BEGIN that finds its connection closed is sent again, once, on a new connection: nothing
    of the transaction had been sent. What follows the BEGIN is never repeated (the caller's
    statements ran on the connection that broke; only the caller could replay them). A class,
    not an `asynccontextmanager`: an `AsyncExitStack` here cost ~10 us per transaction.
    """

    __slots__ = ("_begin", "_database", "_raw", "_transaction")

    def __init__(
        self,
        database: PooledDatabase[RawConnection],
        begin: Callable[[RawConnection], contextlib.AbstractAsyncContextManager[None]],
    ) -> None:
        self._database = database
        self._begin = begin

    async def __aenter__(self) -> RawConnection:
        raw = await self._database.acquire()  # a failure to connect is not tried again
        since = time.monotonic()
        try:
            await self._begin_on(raw)
        except Exception as error:
            if not self._database.closed_before_use(error, since):
                raise
            await self._begin_on(await self._database.acquire())
        return self._raw

    async def _begin_on(self, raw: RawConnection) -> None:
        """Begin the transaction on `raw`; if that fails, `raw` is given back."""
        self._raw = raw
        self._transaction = self._begin(raw)
        try:
            await self._transaction.__aenter__()
        except BaseException as error:
            await self._database.give_back(raw, error)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any
    ) -> None:
        try:
            # COMMIT, or ROLLBACK and `error` on its way (a failed COMMIT or ROLLBACK raises).
            await self._transaction.__aexit__(kind, error, traceback)
        except BaseException as ended:
            await self._database.give_back(self._raw, ended)
            raise
        await self._database.give_back(self._raw, error)


class _Autocommit(Connection, Generic[RawConnection]):
    """`async with`: a pooled connection in autocommit mode, given back (or discarded) on exit.

    The first statement sent on it, if it finds the connection closed, is sent again once on a
    new one (see the module's docstring); every statement goes to the backend's own
    `Connection`. Entered once per request: a class, not an `asynccontextmanager`; what it adds
    to a request is a clock read and, per statement, a flag and a `try` (free unless it fails):
    ~0.1 us (docs/performance.md has none of it: measured in the branch's report).
    """

    def __init__(self, database: PooledDatabase[RawConnection]) -> None:
        super().__init__(database)
        self._pooled = database

    async def __aenter__(self) -> Connection:
        self._raw: RawConnection | None = await self._pooled.acquire()
        self._connection = self._pooled.wrap(self._raw)
        self._first = True
        self._since = time.monotonic()  # (the first statement follows at once)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if self._raw is not None:
            await self._pooled.give_back(self._raw, error)

    async def _replacement(self, error: Exception, first: bool) -> Connection:
        """After `error` from a statement: a new connection to send it again on, if it was the
        first one and found its connection closed; otherwise `error` goes on."""
        if not first or not self._pooled.closed_before_use(error, self._since):
            raise error
        closed, self._raw = self._raw, None
        assert closed is not None
        await self._pooled.give_back(closed, error)
        self._raw = await self._pooled.acquire()
        self._connection = self._pooled.wrap(self._raw)
        return self._connection

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """On the backend's connection; the first statement again on a new one if it found its
        connection closed (`_replacement`)."""
        first, self._first = self._first, False
        try:
            return await self._connection.run(statement, params, verb)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection.run(statement, params, verb)
