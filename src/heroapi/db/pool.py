"""The connection pool of the server databases (PostgreSQL, MySQL/MariaDB): at most `size`
connections, handed out first come first served (`Pool`). What a request does with one, and
when a failed round trip is sent again, is `pooled.py`'s."""

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from heroapi.db.errors import DatabaseUnavailable
from heroapi.metrics import POOL_CONNECTIONS

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
