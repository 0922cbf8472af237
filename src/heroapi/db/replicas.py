"""PostgreSQL read replicas: reads outside a transaction go to a streaming replica that is up and
at most `replica_max_lag` seconds behind the primary; writes, transactions, snapshots, and any
read no replica is fit for go to the primary.

The routing lives here, in the connection layer, so `crud` and the handlers stay as they are: a
read is a `fetch_*` verb on the `Database` or on `Database.connection()`, a write is `write` or
`execute` on either (`Verb.writes`), or anything in `Database.transaction()`. This module is
only loaded when replicas are configured (`create_database`): without them no request reads a
context variable or a clock for it.

**Lag.** A monitor task asks the primary for its WAL write position (`pg_current_wal_lsn()`)
every `STEP` seconds, noting when it asked, then each replica for its replay position
(`pg_last_wal_replay_lsn()`). Every commit acknowledged before a sample was asked for lies at or
below that sample's position; so a replica that has replayed up to it shows every write made
before that moment. The newest such moment is what the replica is *caught up to*, and its lag is
now minus that. This stays right when the primary is idle (its position stays put, each sample
moves the moment on), and when replay is paused or the WAL receiver is cut off (the replica's
position stays put, the primary's moves on, and its lag grows with the clock, between checks
too). A replica whose check fails, or takes longer than `health_timeout`, is down until one
answers again. Without answers from the primary nothing moves on, so after `replica_max_lag`
seconds the replicas stop serving: staleness that cannot be measured is not served.

**Reading your writes.** A task (one request) notes when it last wrote (a context variable set
after every write, failed or not: it may have committed). A replica serves its reads only if it
is caught up to a moment after that, so a request's reads after its own write go to the primary
(no check can have seen that write yet), and later ones in the same task go back to a replica
once it has replayed it. A client's *next* request may still read from a replica that has not
replayed its write yet (for at most `replica_max_lag`): reads that must see other tasks' latest
writes belong in a transaction.

**Failures.** A read a replica fails for any reason but the data itself (a value or constraint
the primary would refuse too) is run again on the primary: a lost or refused connection, a full
pool, a statement PostgreSQL cancelled for a recovery conflict. So a replica's trouble never
fails a request. A lost or refused connection also marks the replica down at once, so the next
reads skip it without waiting for the monitor.

`snapshot()` stays on the primary: once its caller has run statements on it they cannot be run
again elsewhere, and its token must come from one server.
"""

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Final, TypeVar

from sqlalchemy import text

from heroapi.config import DatabaseURL, Settings, parse_database_url
from heroapi.db.database import Connection, ReplicaState, stop
from heroapi.db.errors import DatabaseUnavailable, DataRejected, IntegrityViolation
from heroapi.db.postgres import PostgresDatabase
from heroapi.db.statements import Params, Statement, Verb

logger = logging.getLogger("heroapi")
T = TypeVar("T")

STEP: Final = 0.5  # seconds between checks
# Seconds of the primary's positions kept: a replica further behind shows an infinite lag.
HISTORY: Final = 600.0

# When this task last wrote (time.monotonic()); -inf if it never did.
_last_write: ContextVar[float] = ContextVar("heroapi_last_write", default=-math.inf)

# In bytes since the start of the WAL: integers, compared without parsing "0/3001A0".
_PRIMARY_POSITION = text("SELECT (pg_current_wal_lsn() - '0/0')::bigint")
# NULL on a server that is not replaying WAL: not a replica (or promoted since).
_REPLAY_POSITION = text("SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint")


class _Replica:
    """One replica: its own `PostgresDatabase` (a pool of its own, under its own statement
    watchdog) and what the monitor last learnt of it."""

    def __init__(self, index: int, url: DatabaseURL, settings: Settings) -> None:
        self.index = index
        self.database = PostgresDatabase(url, settings)
        self.connected = False  # its `connect()` has succeeded (the watchdog runs)
        self.up = False
        self.caught_up_to = -math.inf  # time.monotonic() of the newest write it has replayed

    def mark_down(self, reason: str) -> None:
        if self.up:
            logger.warning("read replica %d is down, reads skip it: %s", self.index, reason)
        self.up = False


class ReplicatedDatabase(PostgresDatabase):
    """The primary (this `PostgresDatabase` itself) and its read replicas."""

    def __init__(self, url: DatabaseURL, settings: Settings) -> None:
        super().__init__(url, settings)
        self._replicas = tuple(
            _Replica(index, parse_database_url(raw), settings)
            for index, raw in enumerate(settings.database_replica_urls)
        )
        self._max_lag = settings.replica_max_lag
        self._history = max(HISTORY, 2 * self._max_lag)
        # The primary's sampled positions, oldest first, and when each was asked for. A
        # position is kept once, with its newest moment: the lists grow only with writes.
        self._moments: list[float] = []
        self._positions: list[int] = []
        self._turn = 0  # the replica to try first (round robin)
        self._routed = _RoutedConnection(self)
        self._monitor: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await super().connect()
        self._monitor = asyncio.create_task(self._watch_replicas(), name="replica-lag")

    async def close(self) -> None:
        if self._monitor is not None:
            await stop(self._monitor)
            self._monitor = None
        for replica in self._replicas:
            await replica.database.close()
        await super().close()

    # ------------------------------------------------------------------------------ routing

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self._routed

    def _primary_connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return super().connection()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """The primary's, as always; noted as this task's last write when it ends, committed
        or not (a commit whose answer was lost may still have happened)."""
        try:
            async with super().transaction() as connection:
                yield connection
        finally:
            _last_write.set(time.monotonic())

    def read_latest(self) -> None:
        # As after a write of its own: no check has seen a replica past this moment yet.
        _last_write.set(time.monotonic())

    async def ping(self) -> None:
        """The primary answers (what `heroapi check` asks: writes need it)."""
        async with self._primary_connection() as connection:
            await connection.fetch_values(text("SELECT 1"), {})

    def _choose(self) -> _Replica | None:
        """A replica caught up to within `max_lag` of now and past this task's last write."""
        since = max(time.monotonic() - self._max_lag, _last_write.get())
        replicas = self._replicas
        count = len(replicas)
        for offset in range(count):
            replica = replicas[(self._turn + offset) % count]
            if replica.up and replica.caught_up_to > since:
                self._turn = (replica.index + 1) % count
                return replica
        return None

    async def route(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """Where `connection()` sends each statement: a write to the primary, noted as this
        task's last write (failed or not: it may have committed); a read to a fit replica."""
        if not verb.writes:
            return await self._read(statement, params, verb)
        try:
            async with self._primary_connection() as connection:
                return await connection.run(statement, params, verb)
        finally:
            _last_write.set(time.monotonic())

    async def _read(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """A read on a fit replica; on the primary if none is, or if it fails."""
        replica = self._choose()
        if replica is not None:
            try:
                async with replica.database.connection() as connection:
                    return await connection.run(statement, params, verb)
            except (DataRejected, IntegrityViolation):
                raise  # the data's fault: the primary would say the same
            except Exception as error:
                # With a cause, the connection failed (refused, lost, no answer in time); without,
                # the replica's pool was full: busy, not down.
                if isinstance(error, DatabaseUnavailable) and error.__cause__ is not None:
                    replica.mark_down(str(error))
                logger.debug(
                    "replica %d failed a read, retried on the primary: %r", replica.index, error
                )
        async with self._primary_connection() as connection:
            return await connection.run(statement, params, verb)

    # ------------------------------------------------------------------------------ monitor

    async def _watch_replicas(self) -> None:
        while True:
            try:
                await self.check_replicas()
            except Exception:  # a bug here must not end the checks (the replicas would stop)
                logger.exception("checking the read replicas failed")
            await asyncio.sleep(STEP)

    async def check_replicas(self) -> None:
        """Sample the primary's position, then every replica's (all at once)."""
        asked = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.health_timeout):
                async with self._primary_connection() as connection:
                    position = await connection.fetch_values(_PRIMARY_POSITION, {})
        except Exception:  # noqa: S110 (the primary's failures are the requests' to report)
            pass
        else:
            assert position is not None
            self._record(asked, position[0])
        await asyncio.gather(*(self._check(replica) for replica in self._replicas))

    def _record(self, asked: float, position: int) -> None:
        moments, positions = self._moments, self._positions
        if positions and positions[-1] >= position:
            moments[-1] = asked  # no write since: the same position, a newer moment
        else:
            moments.append(asked)
            positions.append(position)
        expired = bisect.bisect_left(moments, asked - self._history)
        if expired:
            del moments[:expired], positions[:expired]

    async def _check(self, replica: _Replica) -> None:
        try:
            async with asyncio.timeout(self.settings.health_timeout):
                if not replica.connected:
                    await replica.database.connect()
                    replica.connected = True
                row = await replica.database.fetch_values(_REPLAY_POSITION, {})
        except Exception as error:
            replica.mark_down(f"{type(error).__name__}: {error}")
            return
        position = None if row is None else row[0]
        if position is None:
            replica.mark_down("the server is not replaying WAL (not a standby)")
            return
        # The newest moment whose position it has replayed; -inf if none we still remember.
        newest = bisect.bisect_right(self._positions, position) - 1
        replica.caught_up_to = self._moments[newest] if newest >= 0 else -math.inf
        if not replica.up:
            logger.info("read replica %d answers: reads may go to it", replica.index)
        replica.up = True

    def replicas(self) -> Sequence[ReplicaState]:
        now = time.monotonic()
        states = []
        for replica in self._replicas:
            lag = now - replica.caught_up_to if replica.up else None
            serving = lag is not None and lag <= self._max_lag
            states.append(ReplicaState(replica.index, replica.up, lag, serving))
        return states


class _RoutedConnection(Connection):
    """What `ReplicatedDatabase.connection()` gives: each statement goes where
    `ReplicatedDatabase.route` sends it (statements of one connection may be answered by
    different servers, as autocommit statements may see different states anyway). It holds no
    connection itself: it is its own context manager, one per database."""

    def __init__(self, database: ReplicatedDatabase) -> None:
        super().__init__(database)
        self._routing = database

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        return await self._routing.route(statement, params, verb)
