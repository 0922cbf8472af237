"""The connection pool of the server databases (PostgreSQL, MySQL/MariaDB)."""

import asyncio
import contextlib
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Generic, TypeVar

from heroapi.config import DatabaseURL, Settings
from heroapi.db import Connection, Database, DatabaseError, DatabaseUnavailable, IntegrityViolation
from heroapi.observability import POOL_CONNECTIONS

RawConnection = TypeVar("RawConnection")


class Pool(Generic[RawConnection]):
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
        if error is None or isinstance(error, IntegrityViolation):
            self._pool.release(raw)
            return
        # Lost, cancelled mid-statement, or in an unknown state: never hand it out again.
        lost = isinstance(error, DatabaseUnavailable) or self._is_connection_error(error)
        await self._pool.discard(raw, everything_idle=lost)

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return _Wrapped(self)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._checked_out() as raw, self._begin(raw):
            yield self._wrap(raw)


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


class _Wrapped(_CheckedOut[Any]):
    """`async with`: a pooled connection in autocommit mode, as a `Connection`."""

    async def __aenter__(self) -> Connection:
        return self._database._wrap(await super().__aenter__())
