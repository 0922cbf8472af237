"""The serving connection: statements run to their end on the event loop, and what SQLite's
errors mean for the client.

Every statement goes through `SQLiteConnection._execute`: it is the per-statement hot path, so it
stays a plain method with an inline `try` (no context manager, no await).

A read holds the event loop while it runs, so it runs under a time budget
(`HEROAPI_SQLITE_STATEMENT_BUDGET`): SQLite calls a progress handler every
`_PROGRESS_STEPS` virtual machine instructions, which interrupts the statement once its
deadline has passed (`StatementOverBudget`, a 503). A read that is interrupted has changed
nothing. Writes never have a deadline: neither the group commit's (`write_now`) nor any
statement of a write transaction (`writing`), whose interruption would roll the whole
transaction back. Migrations and checkpoints run on connections of their own, with no handler.
"""

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import Callable, Iterator
from time import perf_counter, thread_time
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, cast

from heroapi.db.database import Connection
from heroapi.db.errors import DatabaseUnavailable, DataRejected, IntegrityViolation
from heroapi.db.sqlite.locking import LockBusy, LockWait, is_busy
from heroapi.db.statements import (
    EXECUTE,
    FETCH_ALL,
    FETCH_ALL_VALUES,
    FETCH_ONE,
    FETCH_VALUES,
    WRITE,
    ExecuteResult,
    Params,
    Row,
    Statement,
    Values,
    Verb,
    answers_to_every_verb,
    as_dicts,
)

if TYPE_CHECKING:
    from heroapi.db.sqlite import SQLiteDatabase

T = TypeVar("T")

# How often SQLite calls the progress handler, in virtual machine instructions: ~20 to 100 us
# of work apart, so a deadline is overshot by that at most; a read of one row never calls it,
# a page of 100 rows a few times.
_PROGRESS_STEPS: Final = 2000
_NEVER: Final = math.inf


class StatementOverBudget(DatabaseUnavailable):
    """A read SQLite interrupted past its time budget (`HEROAPI_SQLITE_STATEMENT_BUDGET`)."""


class SQLiteConnection(Connection):
    def __init__(self, database: "SQLiteDatabase", raw: sqlite3.Connection) -> None:
        super().__init__(database)
        # The sqlite3 connection: `SQLiteDatabase` and the group commit begin and end its
        # transactions on it.
        self.raw = raw
        budget = database.settings.sqlite_statement_budget
        self._budget = budget or _NEVER
        self._deadline = _NEVER  # of the read running now, by the clock
        self._cpu_start: float | None = None  # its thread's CPU time when it began, once read
        # A write transaction holds the connection (`SQLiteDatabase.transaction`): no budget.
        self.writing = False
        if budget:
            raw.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)

    def _past_deadline(self) -> bool:
        """SQLite's progress handler: True interrupts the statement. The budget is of this
        thread's CPU time (a read the machine's load holds up is not failed for it), read only
        past the clock's deadline: the clock is ~10x cheaper to read."""
        if self._cpu_start is None:  # the first call of this statement's
            self._cpu_start = thread_time()
            return False
        if perf_counter() < self._deadline:
            return False
        return thread_time() - self._cpu_start > self._budget

    def _start_read(self) -> None:
        if not self.writing:
            self._deadline = perf_counter() + self._budget
            self._cpu_start = None

    def _execute(self, statement: Statement, params: Params) -> sqlite3.Cursor:
        # Inline, not a context manager: this runs for every statement.
        try:
            return self.raw.execute(statement.sql, statement.args(params))
        except sqlite3.Error as error:
            raise sqlite_error(error) from error
        except (OverflowError, UnicodeEncodeError) as error:
            raise DataRejected(str(error)) from error

    def _read(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except sqlite3.Error as error:
            raise sqlite_error(error) from error

    def _names(self, statement: Statement, cursor: sqlite3.Cursor) -> tuple[str, ...]:
        return statement.columns or tuple(column[0] for column in cursor.description)

    # Each statement runs to its end without awaiting: `answer_now` and the answers it picks are
    # plain methods, and `run` just returns what they give.

    # A statement read through these runs under the budget, unless a write transaction holds the
    # connection; the deadline ends with the statement, however it ends.

    def _one(self, statement: Statement, params: Params) -> Row | None:
        self._start_read()
        try:
            cursor = self._execute(statement, params)
            row = self._read(cursor.fetchone)
            cursor.close()
        finally:
            self._deadline = _NEVER
        return None if row is None else as_dicts(self._names(statement, cursor), (row,))[0]

    def _all(self, statement: Statement, params: Params) -> list[Row]:
        self._start_read()
        try:
            cursor = self._execute(statement, params)
            rows = self._read(cursor.fetchall)
        finally:
            self._deadline = _NEVER
        return as_dicts(self._names(statement, cursor), rows)

    def _values(self, statement: Statement, params: Params) -> Values | None:
        self._start_read()
        try:
            cursor = self._execute(statement, params)
            row: Values | None = self._read(cursor.fetchone)
            cursor.close()  # a RETURNING statement's cursor must be closed for it to finish
        finally:
            self._deadline = _NEVER
        return row

    def _all_values(self, statement: Statement, params: Params) -> list[Values]:
        self._start_read()
        try:
            cursor = self._execute(statement, params)
            rows: list[Values] = self._read(cursor.fetchall)
        finally:
            self._deadline = _NEVER
        return rows

    def write_now(self, statement: Statement, params: Params) -> ExecuteResult:
        """A write, never under the budget: what it changed, and the row a RETURNING clause
        gave back (so `EXECUTE` and `WRITE` are one answer here)."""
        cursor = self._execute(statement, params)
        # A RETURNING statement's rows must be read for it to finish.
        rows = self._read(cursor.fetchall)
        return ExecuteResult(cursor.rowcount, cursor.lastrowid, rows[0] if rows else None)

    # Each verb's answer.
    _ANSWERS: ClassVar[dict[Verb[Any], Callable[["SQLiteConnection", Statement, Params], Any]]] = (
        answers_to_every_verb(
            {
                FETCH_ONE: _one,
                FETCH_ALL: _all,
                FETCH_VALUES: _values,
                FETCH_ALL_VALUES: _all_values,
                EXECUTE: write_now,
                WRITE: write_now,
            }
        )
    )

    def answer_now(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        """`run`'s answer, without awaiting; `LockBusy` if another connection's lock refused
        the statement (nothing was done)."""
        return cast(T, self._ANSWERS[verb](self, statement, params))

    # Run inside a request's session (`connection()`, `transaction()`, `snapshot()`): a
    # statement refused by another connection's lock waits on the loop, the request keeping
    # the connection (its statements run in order). The try costs nothing until one is refused.

    async def run(self, statement: Statement, params: Params, verb: Verb[T]) -> T:
        try:
            return self.answer_now(statement, params, verb)
        except LockBusy as busy:
            return await self._again(busy, statement, params, verb)

    async def _again(
        self, busy: LockBusy, statement: Statement, params: Params, verb: Verb[T]
    ) -> T:
        """The statement tried again, after pauses on the loop, until it gets through or the
        wait (`HEROAPI_SQLITE_BUSY_TIMEOUT`) runs out."""
        if self.raw.in_transaction:
            # Inside a transaction SQLite wants it rolled back, not the statement tried again
            # (with BEGIN IMMEDIATE holding the write lock, WAL mode never gets here).
            raise busy
        wait = LockWait(self.database.settings.sqlite_busy_timeout)
        while True:
            await wait.pause()
            with contextlib.suppress(LockBusy):
                return self.answer_now(statement, params, verb)


def sqlite_error(error: sqlite3.Error) -> Exception:
    """What a sqlite3 error means for the client (anything unexpected is a server error)."""
    if isinstance(error, sqlite3.IntegrityError):
        return IntegrityViolation(str(error))
    if isinstance(error, sqlite3.DataError):
        return DataRejected(str(error))
    if isinstance(error, sqlite3.OperationalError):
        if error.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT:
            return StatementOverBudget(f"a read ran past its time budget: {error}")
        if is_busy(error):  # "database is locked": the caller may wait and try again
            return LockBusy(str(error))
        # "unable to open database file", disk I/O
        return DatabaseUnavailable(str(error))
    return RuntimeError(f"SQLite: {error}")


@contextlib.contextmanager
def sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as error:
        raise sqlite_error(error) from error


def set_page_size(raw: Any, page_size: int) -> None:
    """The page size a new database file is made with (a file with pages keeps its own; the
    pragma is then a no-op). Called on each connection before anything is written."""
    raw.execute(f"PRAGMA page_size={int(page_size)}")


class SQLiteSession:
    """`async with`: the connection, alone (plain methods: this runs once per request)."""

    __slots__ = ("_lock", "connection")

    def __init__(self, lock: asyncio.Lock, connection: SQLiteConnection) -> None:
        self._lock = lock
        self.connection = connection

    async def __aenter__(self) -> SQLiteConnection:
        await self._lock.acquire()
        return self.connection

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()
