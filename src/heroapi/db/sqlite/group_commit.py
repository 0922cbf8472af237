"""Group commit: one-row writes that arrive together share one transaction, each still
succeeding or failing on its own (`GroupCommit`)."""

import asyncio
import contextlib
import sqlite3

from heroapi.db import DatabaseUnavailable, ExecuteResult, Params, Statement
from heroapi.db.sqlite.connection import SQLiteConnection, sqlite_errors

_Write = tuple[Statement, Params, "asyncio.Future[ExecuteResult]"]


class GroupCommit:
    """Writes that arrive together, committed together: one transaction, one write lock, one
    set of log frames for the pages they share (a table's last page, an index's hot page).

    A write waits for the end of the event loop's current round, by which time the other
    requests that arrived with it have queued theirs. Each statement is still atomic on its own:
    a constraint that refuses one (SQLite undoes that statement alone) fails that request only.
    An error that ends the whole transaction (I/O, disk full) fails every write of the batch,
    none of which is then committed. No write is answered before its commit.
    """

    def __init__(self, connection: SQLiteConnection, lock: asyncio.Lock) -> None:
        self._connection = connection
        self._lock = lock
        self._pending: list[_Write] = []
        self._waiting: asyncio.Task[None] | None = None
        self.batches = 0  # transactions of more than one write (tests read it)

    async def write(self, statement: Statement, params: Params) -> ExecuteResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ExecuteResult] = loop.create_future()
        self._pending.append((statement, params, future))
        if len(self._pending) == 1:
            loop.call_soon(self._commit)
        return await future

    def _commit(self) -> None:
        if self._lock.locked():
            # A transaction is open on the connection while its request awaits something:
            # these writes go in after it.
            self._waiting = asyncio.create_task(self._commit_after_lock())
            return
        self._run(self._take())

    async def _commit_after_lock(self) -> None:
        async with self._lock:
            self._run(self._take())

    def _take(self) -> list[_Write]:
        # A request cancelled while waiting has its write left out: it was never made.
        batch = [write for write in self._pending if not write[2].done()]
        self._pending = []
        return batch

    def _run(self, batch: list[_Write]) -> None:
        connection = self._connection
        if len(batch) == 1:  # alone: autocommit, no BEGIN/COMMIT
            statement, params, future = batch[0]
            try:
                future.set_result(connection.write_now(statement, params))
            except Exception as error:
                future.set_exception(error)
            return
        raw = connection._raw
        results: list[ExecuteResult | Exception] = []
        try:
            with sqlite_errors():
                raw.execute("BEGIN IMMEDIATE")
            for statement, params, _ in batch:
                try:
                    results.append(connection.write_now(statement, params))
                except Exception as error:
                    if not raw.in_transaction:
                        raise  # SQLite ended the transaction: nothing of the batch stays
                    results.append(error)  # this statement alone was undone
            with sqlite_errors():
                raw.execute("COMMIT")
        except Exception as error:
            if raw.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
            for _, _, future in batch:
                future.set_exception(error)
            return
        self.batches += 1
        for (_, _, future), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def close(self) -> None:
        for _, _, future in self._take():
            future.set_exception(DatabaseUnavailable("the database was closed"))
