"""Group commit: one-row writes that arrive together share one transaction, each still
succeeding or failing on its own (`GroupCommit`)."""

import asyncio
import contextlib
import sqlite3
from typing import NamedTuple

from heroapi.db.database import stop
from heroapi.db.errors import DatabaseUnavailable
from heroapi.db.sqlite.connection import SQLiteConnection, sqlite_errors
from heroapi.db.sqlite.locking import Backoff, LockBusy, lock_timeout
from heroapi.db.statements import ExecuteResult, Params, Statement


class _Write(NamedTuple):
    """A write waiting for its commit."""

    statement: Statement
    params: Params
    answer: "asyncio.Future[ExecuteResult]"  # what its request awaits
    deadline: float  # `loop.time()` by which it gives up waiting for another connection's lock


class GroupCommit:
    """Writes that arrive together, committed together: one transaction, one write lock, one
    set of log frames for the pages they share (a table's last page, an index's hot page).

    A write waits for the end of the event loop's current round, by which time the other
    requests that arrived with it have queued theirs. Each statement is still atomic on its own:
    a constraint that refuses one (SQLite undoes that statement alone) fails that request only.
    An error that ends the whole transaction (I/O, disk full) fails every write of the batch,
    none of which is then committed. No write is answered before its commit.

    While another connection holds the write lock, the batch is tried again after pauses on
    the loop (`locking.py`), with the connection free for reads in between; writes that arrive
    meanwhile join it. Each write gives up (503) `busy_timeout` seconds after it was made. A
    batch refused at its COMMIT is rolled back and tried again whole: its transaction is never
    left open on the connection across a pause.
    """

    def __init__(self, connection: SQLiteConnection, lock: asyncio.Lock, busy_timeout: float):
        self._connection = connection
        self._lock = lock
        self._busy_timeout = busy_timeout
        self._pending: list[_Write] = []
        # The task committing the pending writes when they cannot be committed at once.
        self._waiting: asyncio.Task[None] | None = None
        self.batches = 0  # transactions of more than one write (tests read it)

    async def write(self, statement: Statement, params: Params) -> ExecuteResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ExecuteResult] = loop.create_future()
        self._pending.append(_Write(statement, params, future, loop.time() + self._busy_timeout))
        if len(self._pending) == 1 and self._waiting is None:
            loop.call_soon(self._commit)
        return await future

    def _commit(self) -> None:
        if self._lock.locked():
            # A transaction is open on the connection while its request awaits something:
            # these writes go in after it.
            self._waiting = asyncio.create_task(self._commit_later(busy=False))
            return
        batch = self._take()
        if not self._run(batch):
            self._pending = batch  # nothing was added meanwhile: this ran without awaiting
            self._waiting = asyncio.create_task(self._commit_later(busy=True))

    async def _commit_later(self, *, busy: bool) -> None:
        """Commit the pending writes once the connection is free and SQLite's write lock can be
        had, pausing on the loop while another connection holds it."""
        backoff = Backoff()
        try:
            while self._pending:
                if busy:
                    self._give_up_late_writes()
                    if not self._pending:
                        break
                    await backoff.sleep(min(write.deadline for write in self._pending))
                async with self._lock:
                    batch = self._take()
                    busy = not self._run(batch)
                    if busy:
                        self._pending[:0] = batch  # before the writes that came meanwhile
        finally:
            self._waiting = None

    def _give_up_late_writes(self) -> None:
        now = asyncio.get_running_loop().time()
        waiting = []
        for write in self._pending:
            if write.answer.done():
                continue  # cancelled by its request
            if write.deadline <= now:
                write.answer.set_exception(lock_timeout(self._busy_timeout))
            else:
                waiting.append(write)
        self._pending = waiting

    def _take(self) -> list[_Write]:
        # A request cancelled while waiting has its write left out: it was never made.
        batch = [write for write in self._pending if not write.answer.done()]
        self._pending = []
        return batch

    def _run(self, batch: list[_Write]) -> bool:
        """Commit `batch` and answer its writes; False (nothing done, nothing answered) if
        another connection's lock refused it."""
        if len(batch) == 1:
            return self._run_alone(batch[0])
        return self._run_together(batch)

    def _run_alone(self, write: _Write) -> bool:
        """One write, in autocommit: no BEGIN/COMMIT."""
        try:
            write.answer.set_result(self._connection.write_now(write.statement, write.params))
        except LockBusy:
            return False  # in autocommit, SQLite undid the statement
        except Exception as error:
            write.answer.set_exception(error)
        return True

    def _run_together(self, batch: list[_Write]) -> bool:
        """Writes in one transaction; an error that ends it fails every one of them."""
        raw = self._connection.raw
        try:
            results = self._transaction(batch)
        except Exception as error:
            if raw.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
            if isinstance(error, LockBusy):
                return False
            for write in batch:
                write.answer.set_exception(error)
            return True
        self.batches += 1
        for write, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                write.answer.set_exception(result)
            else:
                write.answer.set_result(result)
        return True

    def _transaction(self, batch: list[_Write]) -> list[ExecuteResult | Exception]:
        """BEGIN IMMEDIATE, the writes, COMMIT: each write's result, or the error that undid it
        alone. What ends the transaction (a lock refused, I/O, disk full) is raised, with the
        transaction possibly still open for the caller to roll back."""
        connection = self._connection
        raw = connection.raw
        results: list[ExecuteResult | Exception] = []
        with sqlite_errors():
            raw.execute("BEGIN IMMEDIATE")
        for write in batch:
            try:
                results.append(connection.write_now(write.statement, write.params))
            except LockBusy:
                raise  # the batch waits whole
            except Exception as error:
                if not raw.in_transaction:
                    raise  # SQLite ended the transaction: nothing of the batch stays
                results.append(error)  # this statement alone was undone
        with sqlite_errors():
            raw.execute("COMMIT")
        return results

    async def close(self) -> None:
        if self._waiting is not None:
            await stop(self._waiting)
        for write in self._take():
            write.answer.set_exception(DatabaseUnavailable("the database was closed"))
