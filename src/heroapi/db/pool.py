"""The connection pool of the server databases (PostgreSQL, MySQL/MariaDB)."""

import asyncio
import contextlib
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

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


class PooledDatabase(Database, Generic[RawConnection]):
    """A backend whose connections come from a `_Pool`."""

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
