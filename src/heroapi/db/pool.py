"""The connection pool of the server databases (PostgreSQL, MySQL/MariaDB).

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

import asyncio
import contextlib
import time
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Generic, TypeVar

from heroapi.config import DatabaseURL, Settings
from heroapi.db import (
    Connection,
    Database,
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    ExecuteResult,
    IntegrityViolation,
    Params,
    Row,
    Statement,
    TransactionConflict,
    Values,
)
from heroapi.observability import POOL_CONNECTIONS

RawConnection = TypeVar("RawConnection")


class Pool(Generic[RawConnection]):
    """At most `size` connections, opened on demand and kept open.

    Unlike asyncpg's own pool it runs no reset query when a connection comes back: heroapi never
    leaves session state behind (no temporary tables, no SET), and a connection that comes back
    from a failed or cancelled request is closed instead of reused.

    When every connection is in use, requests wait in line, first come first served, and a
    connection that comes back goes straight to the first in line. `timeout` is kept by one
    timer for the whole line (set for its oldest waiter), not one per wait: under a load beyond
    the pool, `asyncio.timeout` around each wait cost ~13% of a PostgreSQL `GET /heroes/{id}`
    (docs/performance.md).
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
        self._size = size
        self._timeout = timeout
        self._opened = 0  # connections open or being opened
        self._in_use = 0
        self._idle: list[RawConnection] = []
        # Who waits, oldest first, and since when (loop time). A waiter gets a connection, or
        # None: a closed connection's slot, to open a new one in.
        self._line: deque[tuple[asyncio.Future[RawConnection | None], float]] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        self._in_use_gauge = POOL_CONNECTIONS.labels("in_use")
        self._idle_gauge = POOL_CONNECTIONS.labels("idle")
        self._reported = (0, 0)
        self._report_due = False

    REPORT_EVERY: Final = 0.1

    def _report(self) -> None:
        # The gauges follow the pool within REPORT_EVERY seconds, not at every checkout (a gauge
        # write is a shared-memory write in multiprocess mode: ~2% of a request).
        if not self._report_due:
            self._report_due = True
            asyncio.get_running_loop().call_later(self.REPORT_EVERY, self._write_gauges)

    def _write_gauges(self) -> None:
        self._report_due = False
        state = (self._in_use, len(self._idle))
        if state != self._reported:
            self._reported = state
            self._in_use_gauge.set(state[0])
            self._idle_gauge.set(state[1])

    async def acquire(self) -> RawConnection:
        if self._idle:
            connection = self._idle.pop()
        else:
            handed: RawConnection | None = None
            if self._opened < self._size:
                self._opened += 1  # a free slot: ours to open a connection in
            else:
                handed = await self._wait()  # a connection, or a slot kept for us
            connection = await self._open_in_slot() if handed is None else handed
        self._in_use += 1
        self._report()
        return connection

    async def _open_in_slot(self) -> RawConnection:
        """A new connection, in a slot already counted in `_opened`."""
        try:
            return await self._open()
        except BaseException:
            self._slot_freed()
            raise

    async def _wait(self) -> RawConnection | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RawConnection | None] = loop.create_future()
        now = loop.time()
        self._line.append((waiter, now))
        if self._expiry is None:
            self._expiry = loop.call_at(now + self._timeout, self._expire)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled just after its turn came: what it was given goes to the next in line.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is None:
                    self._slot_freed()
                else:
                    self._hand_over(handed)
            raise

    def _next_waiter(self) -> "asyncio.Future[RawConnection | None] | None":
        while self._line:
            waiter, _ = self._line.popleft()
            if not waiter.done():  # not cancelled, not timed out
                return waiter
        return None

    def _hand_over(self, connection: RawConnection) -> None:
        waiter = self._next_waiter()
        if waiter is None:
            self._idle.append(connection)
        else:
            waiter.set_result(connection)

    def _slot_freed(self) -> None:
        """One connection fewer: the first in line gets its slot, counted for it at once (a
        request that comes first to the loop must not open one in it meanwhile)."""
        self._opened -= 1
        waiter = self._next_waiter()
        if waiter is not None:
            self._opened += 1
            waiter.set_result(None)

    def _expire(self) -> None:
        """Fail everyone who has waited `timeout` seconds; set the timer for the next one."""
        self._expiry = None
        loop = asyncio.get_running_loop()
        started_before = loop.time() - self._timeout
        while self._line:
            waiter, since = self._line[0]
            if not waiter.done():
                if since > started_before:
                    self._expiry = loop.call_at(since + self._timeout, self._expire)
                    return
                waiter.set_exception(
                    DatabaseUnavailable(f"no database connection free within {self._timeout:g} s")
                )
            self._line.popleft()

    def release(self, connection: RawConnection) -> None:
        self._in_use -= 1
        self._hand_over(connection)
        self._report()

    async def discard(self, connection: RawConnection, *, everything_idle: bool = False) -> None:
        """Close a connection that may be broken; after a lost connection, the idle ones too."""
        doomed = [connection]
        if everything_idle:
            doomed += self._idle
            self._idle.clear()
        self._in_use -= 1
        for _ in doomed:
            self._slot_freed()
        self._report()
        for each in doomed:
            with contextlib.suppress(Exception):
                await self._close(each)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._opened -= len(idle)
        self._report()
        for connection in idle:
            with contextlib.suppress(Exception):
                await self._close(connection)


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

    def _checked_out(self) -> "_CheckedOut[RawConnection]":
        return _CheckedOut(self)

    async def _give_back(self, raw: RawConnection, error: BaseException | None) -> None:
        # A refused write or a lock conflict leaves the connection sound (its transaction, if
        # any, was rolled back on the way out).
        if error is None or isinstance(error, IntegrityViolation | TransactionConflict):
            self._pool.release(raw)
            return
        # Lost, cancelled mid-statement, or in an unknown state: never hand it out again.
        lost = isinstance(error, DatabaseUnavailable) or self._is_connection_error(error)
        await self._pool.discard(raw, everything_idle=lost)

    def _closed_before_use(self, error: BaseException, since: float) -> bool:
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
            yield self._wrap(raw)

    def _begun(
        self, begin: Callable[[RawConnection], contextlib.AbstractAsyncContextManager[None]]
    ) -> "_Begun[RawConnection]":
        """`async with`: a checked-out connection in the transaction `begin(raw)` opens (and
        ends on exit). A backend's own kinds of transaction (a read-only snapshot) use it too."""
        return _Begun(self, begin)


class _CheckedOut(Generic[RawConnection]):
    """`async with`: a pooled connection, given back (or discarded) on exit. A class, not an
    `asynccontextmanager`: this runs for every request."""

    __slots__ = ("_database", "_raw")

    def __init__(self, database: PooledDatabase[RawConnection]) -> None:
        self._database = database

    async def __aenter__(self) -> RawConnection:
        self._raw = await self._database._acquire()
        return self._raw

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        await self._database._give_back(self._raw, error)


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
        raw = await self._database._acquire()  # a failure to connect is not tried again
        since = time.monotonic()
        try:
            await self._begin_on(raw)
        except Exception as error:
            if not self._database._closed_before_use(error, since):
                raise
            await self._begin_on(await self._database._acquire())
        return self._raw

    async def _begin_on(self, raw: RawConnection) -> None:
        """Begin the transaction on `raw`; if that fails, `raw` is given back."""
        self._raw = raw
        self._transaction = self._begin(raw)
        try:
            await self._transaction.__aenter__()
        except BaseException as error:
            await self._database._give_back(raw, error)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any
    ) -> None:
        try:
            # COMMIT, or ROLLBACK and `error` on its way (a failed COMMIT or ROLLBACK raises).
            await self._transaction.__aexit__(kind, error, traceback)
        except BaseException as ended:
            await self._database._give_back(self._raw, ended)
            raise
        await self._database._give_back(self._raw, error)


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
        self._raw: RawConnection | None = await self._pooled._acquire()
        self._connection = self._pooled._wrap(self._raw)
        self._first = True
        self._since = time.monotonic()  # (the first statement follows at once)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if self._raw is not None:
            await self._pooled._give_back(self._raw, error)

    async def _replacement(self, error: Exception, first: bool) -> Connection:
        """After `error` from a statement: a new connection to send it again on, if it was the
        first one and found its connection closed; otherwise `error` goes on."""
        if not first or not self._pooled._closed_before_use(error, self._since):
            raise error
        closed, self._raw = self._raw, None
        assert closed is not None
        await self._pooled._give_back(closed, error)
        self._raw = await self._pooled._acquire()
        self._connection = self._pooled._wrap(self._raw)
        return self._connection

    async def _fetch_one(self, statement: Statement, params: Params) -> Row | None:
        first, self._first = self._first, False
        try:
            return await self._connection._fetch_one(statement, params)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection._fetch_one(statement, params)

    async def _fetch_all(self, statement: Statement, params: Params) -> list[Row]:
        first, self._first = self._first, False
        try:
            return await self._connection._fetch_all(statement, params)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection._fetch_all(statement, params)

    async def _fetch_values(self, statement: Statement, params: Params) -> Values | None:
        first, self._first = self._first, False
        try:
            return await self._connection._fetch_values(statement, params)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection._fetch_values(statement, params)

    async def _fetch_all_values(self, statement: Statement, params: Params) -> list[Values]:
        first, self._first = self._first, False
        try:
            return await self._connection._fetch_all_values(statement, params)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection._fetch_all_values(statement, params)

    async def _execute(self, statement: Statement, params: Params) -> ExecuteResult:
        first, self._first = self._first, False
        try:
            return await self._connection._execute(statement, params)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection._execute(statement, params)

    async def _write(self, statement: Statement, params: Params) -> ExecuteResult:
        first, self._first = self._first, False
        try:
            return await self._connection._write(statement, params)
        except Exception as error:
            connection = await self._replacement(error, first)
        return await connection._write(statement, params)
