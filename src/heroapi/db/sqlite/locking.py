"""Waiting for a lock another connection holds, on the event loop instead of inside SQLite.

SQLite's own wait (`busy_timeout`) sleeps inside the C call, and the serving connection is
called from the event loop: while another process held the write lock (a migration, a backup,
the `sqlite3` shell), one waiting write stopped every request of the process, `/health/live`
included. So the serving connection has no busy handler: a statement that needs a lock it
cannot have fails at once with SQLITE_BUSY (`LockBusy`, nothing done), and its caller tries it
again after an `asyncio.sleep`, the loop serving other requests meanwhile, until
`HEROAPI_SQLITE_BUSY_TIMEOUT` has passed. Statements that find no lock in their way, nearly
all of them, run as before: the waiting costs nothing until a lock is met.

Who waits where:
- a one-row write (`GroupCommit`): with the connection free, each write until its own deadline;
- `transaction()` and `snapshot()`: their BEGIN, with the connection free meanwhile;
- a COMMIT refused by readers (only outside WAL mode): holding the connection, whose
  transaction is open;
- a read refused by a lock (in WAL mode, only while another process recovers the log or holds
  the database exclusively; then every read waits alike): alone if it ran on the free
  connection, holding the connection if its request holds it.
"""

import asyncio
import sqlite3
from typing import Final

from heroapi.db.errors import DatabaseUnavailable

FIRST_PAUSE: Final = 0.001
# The longest pause between two tries: how late a waiting write may notice that the lock
# was let go. A try costs microseconds, so 20 a second are nothing.
LONGEST_PAUSE: Final = 0.05


class LockBusy(DatabaseUnavailable):
    """SQLITE_BUSY: another connection holds a lock the statement needs. Nothing was done; in
    autocommit (and for BEGIN or COMMIT) the statement may be tried again."""


def is_busy(error: sqlite3.Error) -> bool:
    # Extended codes too: SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT.
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def lock_timeout(timeout: float) -> DatabaseUnavailable:
    """What a statement that waited `timeout` seconds for a lock raises (a 503 for clients)."""
    return DatabaseUnavailable(
        f"database is locked: another connection kept the lock for {timeout:g} s "
        "(HEROAPI_SQLITE_BUSY_TIMEOUT)"
    )


class Backoff:
    """Pauses between tries for a lock: 1 ms, doubling up to LONGEST_PAUSE, never past a
    deadline (in `loop.time()`)."""

    __slots__ = ("_pause",)

    def __init__(self) -> None:
        self._pause = FIRST_PAUSE

    async def sleep(self, deadline: float) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, min(self._pause, remaining)))
        self._pause = min(self._pause * 2, LONGEST_PAUSE)


class LockWait(Backoff):
    """One statement's wait: `pause()` until `timeout` seconds after the first refusal, then
    `lock_timeout`. A timeout of 0 fails at the first refusal, as `busy_timeout=0` would."""

    __slots__ = ("_deadline", "_timeout")

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        self._deadline = asyncio.get_running_loop().time() + timeout

    async def pause(self) -> None:
        if asyncio.get_running_loop().time() >= self._deadline:
            raise lock_timeout(self._timeout)
        await self.sleep(self._deadline)
