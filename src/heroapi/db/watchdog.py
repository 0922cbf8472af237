"""PostgreSQL's statement watchdog: a statement that gets no answer (server hung, network cut, a
lock that is never released) fails after `database_command_timeout` seconds, never hangs.

One task looks, a few times per timeout, at the connections waiting for an answer; past the
timeout it asks the server to cancel the statement, so it stops there too instead of holding a
backend and its locks, then closes the connection, and what waits on it fails. asyncpg's own
`command_timeout` does the same with a timer per statement, which cost ~11 us of CPU each
(~2.5% of a `GET /heroes/{id}`); the watchdog costs a clock read per statement.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

import asyncpg
import asyncpg.connect_utils

from heroapi.db.database import stop

logger = logging.getLogger("heroapi")


class StatementWatchdog:
    """Gives up on statements that got no answer within `timeout` seconds (`start()` to `close()`);
    a cancel gets `cancel_timeout` seconds to reach the server."""

    def __init__(self, timeout: float, cancel_timeout: float) -> None:
        self._timeout = timeout
        self._cancel_timeout = cancel_timeout
        # Connections waiting for an answer, and since when (time.monotonic()): whoever sends a
        # statement notes it here, and removes it once answered.
        self.waiting: dict[asyncpg.Connection, float] = {}
        self._timed_out: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self._abandoning: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="statement-timeouts")

    async def close(self) -> None:
        if self._task is not None:
            await stop(self._task)
            self._task = None
        for task in list(self._abandoning):
            await stop(task)

    def timed_out(self, raw: asyncpg.Connection) -> bool:
        """Whether the watchdog gave up on `raw`'s statement (and so closed `raw`)."""
        return raw in self._timed_out

    async def _watch(self) -> None:
        timeout = self._timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for raw, since in list(self.waiting.items()):
                if now - since > timeout and raw not in self._timed_out:
                    logger.warning(
                        "no answer from the database within %g s: cancelling the statement "
                        "and closing the connection",
                        timeout,
                    )
                    self._timed_out.add(raw)
                    task = asyncio.create_task(self._abandon(raw), name="statement-cancel")
                    self._abandoning.add(task)
                    task.add_done_callback(self._abandoning.discard)

    async def _abandon(self, raw: asyncpg.Connection) -> None:
        """Stop `raw`'s statement on the server, then close `raw` (what waits on it fails). The
        cancel goes first: once the connection is closed, the server (or a pooler, which maps a
        cancel key to its client connection) no longer knows whose statement to stop, and a
        backend waiting for a lock would wait on, holding its place in every queue."""
        try:
            async with asyncio.timeout(self._cancel_timeout):
                await cancel_on_server(raw)
        except Exception as error:  # unreachable too: closing is all that is left
            logger.warning("could not cancel the statement on the server: %s", error)
        finally:
            raw.terminate()


async def cancel_on_server(raw: asyncpg.Connection) -> None:
    """Ask the server to stop what `raw` is running: PostgreSQL's CancelRequest, sent on a
    connection of its own with the key the server gave `raw` at connect (a pooler forwards it to
    the server connection running the statement). It is asyncpg's own function, the one its
    per-call `timeout=` uses; asyncpg has no public call to cancel an abandoned statement."""
    inner: Any = raw  # its private parts: where it connected, and the key
    connect_utils: Any = asyncpg.connect_utils
    await connect_utils._cancel(
        loop=asyncio.get_running_loop(),
        addr=inner._addr,
        params=inner._params,
        backend_pid=inner._protocol.backend_pid,
        backend_secret=inner._protocol.backend_secret,
    )
