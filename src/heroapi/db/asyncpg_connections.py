"""asyncpg's connections as heroapi opens them, each saying how the data layer's verbs run on it
(`answers`): through asyncpg's cache of named prepared statements (`AsyncpgConnection`: direct,
or through a session pooler), or unnamed (`UnnamedStatements`: behind a transaction pooler).
Either way, a statement the connection has run before takes one round trip: Bind, Execute and
Sync; unnamed, Parse first, sent with them. (asyncpg left to itself describes an unnamed
statement again before every run: two round trips, and a second Parse on the server.)
"""

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final, TypeVar

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

from heroapi.db.statements import (
    EXECUTE,
    FETCH_ALL,
    FETCH_ALL_VALUES,
    FETCH_ONE,
    FETCH_VALUES,
    WRITE,
    ExecuteResult,
    Row,
    Verb,
    answers_to_every_verb,
)

T = TypeVar("T")

# asyncpg's default: the prepared statements each connection keeps, by SQL text.
STATEMENT_CACHE_SIZE: Final = 100


def _row(record: asyncpg.Record | None) -> Row | None:
    return None if record is None else dict(record)


def _rows(records: list[asyncpg.Record]) -> list[Row]:
    return [dict(record) for record in records]


def _as_is(answer: T) -> T:
    return answer


def _changed(status: str) -> ExecuteResult:
    # "DELETE 3", "UPDATE 1", "INSERT 0 1": the count is the last word.
    count = status.rsplit(" ", 1)[-1]
    return ExecuteResult(int(count) if count.isdigit() else 0)


_Answers = dict[Verb[Any], tuple[Callable[..., Awaitable[Any]], Callable[[Any], Any]]]

# Each verb's asyncpg call, and what its answer is made into. asyncpg's Records are sequences
# already: they are the values. (`WRITE` is `EXECUTE`, or `FETCH_VALUES` with RETURNING.)
_NAMED: _Answers = answers_to_every_verb(
    {
        FETCH_ONE: (asyncpg.Connection.fetchrow, _row),
        FETCH_ALL: (asyncpg.Connection.fetch, _rows),
        FETCH_VALUES: (asyncpg.Connection.fetchrow, _as_is),
        FETCH_ALL_VALUES: (asyncpg.Connection.fetch, _as_is),
        EXECUTE: (asyncpg.Connection.execute, _changed),
    },
    answered_before=(WRITE,),
)


class AsyncpgConnection(asyncpg.Connection):
    """An asyncpg connection that says how heroapi runs each verb on it (`answers`): through
    asyncpg's cache of named prepared statements."""

    __slots__ = ()
    answers: ClassVar[_Answers] = _NAMED


class UnnamedStatements(AsyncpgConnection):
    """An asyncpg connection behind a transaction pooler: every statement unnamed, asyncpg's
    own cache off, and each statement's description kept here, by SQL text, for the last
    `STATEMENT_CACHE_SIZE` statements it ran (asyncpg re-sends an unnamed statement's Parse
    with its Bind: the server connection that runs it needs nothing prepared before).

    A description is trusted for as long as the connection lives, as a named statement's
    would be, but the server cannot refuse it as stale: a column whose type changes under a
    running process is read with its old type's decoder (which refuses a value of another
    length). heroapi's migrations change no column's type in place."""

    __slots__ = ("_statements",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._statements: dict[str, PreparedStatement] = {}

    async def statement(self, sql: str) -> PreparedStatement:
        """`sql`, described on its first run here (a round trip), then as kept."""
        statements = self._statements
        statement = statements.pop(sql, None)  # put back last: the most recently used
        if statement is None:
            statement = await self.prepare(sql)
            if len(statements) >= STATEMENT_CACHE_SIZE:
                del statements[next(iter(statements))]
        statements[sql] = statement
        return statement

    async def fetchrow_unnamed(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await (await self.statement(sql)).fetchrow(*args)

    async def fetch_unnamed(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await (await self.statement(sql)).fetch(*args)

    async def execute_unnamed(self, sql: str, *args: Any) -> str:
        """What the statement did, as the server's status ("UPDATE 1"), as `execute` says."""
        statement = await self.statement(sql)
        await statement.fetch(*args)
        return statement.get_statusmsg() or ""

    answers: ClassVar[_Answers] = answers_to_every_verb(
        {
            FETCH_ONE: (fetchrow_unnamed, _row),
            FETCH_ALL: (fetch_unnamed, _rows),
            FETCH_VALUES: (fetchrow_unnamed, _as_is),
            FETCH_ALL_VALUES: (fetch_unnamed, _as_is),
            EXECUTE: (execute_unnamed, _changed),
        },
        answered_before=(WRITE,),
    )
