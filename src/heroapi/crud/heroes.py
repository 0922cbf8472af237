"""The heroes: the tutorial's Hero API."""

import bisect
import functools
import operator
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Delete,
    Select,
    Text,
    Update,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from heroapi.crud.paging import page_start
from heroapi.db import Connection, Database, Values
from heroapi.models import HeroCreate, HeroPublic, hero_table
from heroapi.rendering import heroes_json

# Heroes are read as values in `HeroPublic`'s field order (name, age, id), which the routes
# render straight to JSON: no dict, no model instance per row.
_PUBLIC = tuple(hero_table.c[name] for name in HeroPublic.model_fields)
_BY_ID = hero_table.c.id == bindparam("hero_id")

_SELECT_HERO = select(*_PUBLIC).where(_BY_ID)
# Ordered by id: a page is the same on every backend and every call.
_SELECT_HEROES = (
    select(*_PUBLIC).order_by(hero_table.c.id).offset(bindparam("offset")).limit(bindparam("limit"))
)
# On a server database, a deep page skips its offset in the primary key's index alone, then
# reads just the page's rows from there. In SQLite the table itself is the id index, so the
# plain query is already that.
_SELECT_HEROES_DEFERRED = (
    select(*_PUBLIC)
    .where(hero_table.c.id >= page_start(hero_table))
    .order_by(hero_table.c.id)
    .limit(bindparam("limit"))
)
# A deep page read from where an earlier page started (see PageAnchors).
_SELECT_HEROES_FROM = (
    select(*_PUBLIC)
    .where(hero_table.c.id >= bindparam("from_id"))
    .order_by(hero_table.c.id)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_ID = list(HeroPublic.model_fields).index("id")
_INSERT_HERO = insert(hero_table).values(
    name=bindparam("name"), age=bindparam("age"), secret_name=bindparam("secret_name")
)
_INSERT_HERO_RETURNING = _INSERT_HERO.returning(*_PUBLIC)
_DELETE_HERO: Delete = delete(hero_table).where(_BY_ID)


@functools.cache
def _update_hero(fields: tuple[str, ...], returning: bool) -> Update:
    """The UPDATE for one set of changed columns (at most 2^3 of them, each built once)."""
    statement: Update = (
        hero_table.update().where(_BY_ID).values({name: bindparam(name) for name in fields})
    )
    return statement.returning(*_PUBLIC) if returning else statement


# Writes of one statement go through `Database.write`: the statement is its own transaction on
# every backend (no BEGIN/COMMIT to send, which on a server database are two more round trips);
# SQLite commits the writes that arrive together in one transaction (group commit).


async def create_hero(*, database: Database, hero: HeroCreate) -> Values:
    """Store a new hero; the database assigns its id. Returns the `HeroPublic` values."""
    values = hero.model_dump(include={"name", "age", "secret_name"})
    if database.supports_returning:
        row = (await database.write(_INSERT_HERO_RETURNING, values)).row
        assert row is not None  # an INSERT ... RETURNING returns its row
        return row
    result = await database.write(_INSERT_HERO, values)
    return (values["name"], values["age"], result.lastrowid)


class PageAnchors:
    """Where deep pages start: offset -> the id of the hero at that offset, learnt from pages
    already read, and valid only for the state of the data they were read in.

    `OFFSET n` makes a database step over n rows on every request (100,000 rows: milliseconds
    of CPU per page, on SQLite with the event loop waiting). Given the id at an offset at or
    before n, a page is `WHERE id >= that_id ... OFFSET (n - its_offset)` instead: a client
    paging on, or many asking for the same page, costs the page's rows, not the offset's.
    Every write (by any process) changes the snapshot token and forgets them all.
    """

    MIN_OFFSET: Final = 1000  # below this, stepping over the rows costs less than the bookkeeping
    SIZE: Final = 1024

    def __init__(self) -> None:
        self._token: Hashable | None = None
        self._offsets: list[int] = []  # sorted
        self._ids: dict[int, int] = {}

    def find(self, token: Hashable, offset: int) -> tuple[int, int] | None:
        """The nearest known (offset, id) at or before `offset`, if the data are unchanged."""
        if token != self._token:
            self._token = token
            self._offsets.clear()
            self._ids.clear()
            return None
        index = bisect.bisect_right(self._offsets, offset)
        if index == 0:
            return None
        start = self._offsets[index - 1]
        return start, self._ids[start]

    def learn(self, token: Hashable, offset: int, hero_id: int) -> None:
        if token != self._token or offset in self._ids:
            return
        if len(self._offsets) >= self.SIZE:
            self._offsets.clear()
            self._ids.clear()
        bisect.insort(self._offsets, offset)
        self._ids[offset] = hero_id


_anchors: "weakref.WeakKeyDictionary[Database, PageAnchors]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class _PageReads:
    """The statements that read one page: `plain` from its offset, `from_anchor` from where an
    earlier page started (bind parameters `from_id`, `offset`, `limit`); `first_id` finds the
    page's first id in what they return."""

    plain: ClauseElement
    from_anchor: ClauseElement
    first_id: Callable[[list[Values]], int | None]


def _first_row_id(rows: list[Values]) -> int | None:
    return int(rows[0][_ID]) if rows else None


def _rendered_first_id(rows: list[Values]) -> int | None:
    first_id = rows[0][0]
    return None if first_id is None else int(first_id)


def _sql_string(text: str) -> ColumnElement[str]:
    """A string constant written into the statement (no bind parameter to send each time)."""
    return literal_column("'" + text.replace("'", "''") + "'", Text)


def _json_value(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A column's value as JSON text: strings through `to_json` (which escapes them as orjson
    does), numbers as PostgreSQL writes them (`to_json` on every column doubled the cost of a
    page in the database, looking up each value's type again), NULL as `null`."""
    python_type = column.type.python_type
    if python_type is str:
        value: ColumnElement[str] = cast(func.to_json(column), Text)
    elif python_type is int:
        value = cast(column, Text)
    else:
        raise TypeError(f"no JSON rendering for {column}: {python_type.__name__}")
    if getattr(column, "nullable", True):
        value = func.coalesce(value, _sql_string("null"))
    return value


def _rendered(page: Select[Any, Any, Any]) -> Select[Any, str]:
    """`page`, rendered to JSON by PostgreSQL: the bytes `list[HeroPublic]` gives (no spaces,
    fields in its order), and the page's first id.

    A 100-row page costs the server far less this way: no Record per row, no dict per row, no
    serializing (docs/performance.md).
    """
    rows = page.subquery("page")
    pieces: list[ColumnElement[str]] = []
    for index, field in enumerate(HeroPublic.model_fields):
        key = ("{" if index == 0 else ",") + orjson.dumps(field).decode() + ":"
        pieces += [_sql_string(key), _json_value(rows.c[field])]
    pieces.append(_sql_string("}"))
    hero = functools.reduce(operator.add, pieces)
    heroes = func.string_agg(hero, aggregate_order_by(_sql_string(","), rows.c.id))
    array = _sql_string("[") + func.coalesce(heroes, _sql_string("")) + _sql_string("]")
    return select(func.min(rows.c.id).label("first_id"), array.label("heroes"))


# SQLite reads pages as they are; a server database skips a page's offset in the id index.
_SQLITE_PAGE = _PageReads(_SELECT_HEROES, _SELECT_HEROES_FROM, _first_row_id)
_SERVER_PAGE = _PageReads(_SELECT_HEROES_DEFERRED, _SELECT_HEROES_FROM, _first_row_id)
_RENDERED_PAGE = _PageReads(
    _rendered(_SELECT_HEROES_DEFERRED), _rendered(_SELECT_HEROES_FROM), _rendered_first_id
)


async def _read_page(
    database: Database, reads: _PageReads, offset: int, limit: int
) -> list[Values]:
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if offset < PageAnchors.MIN_OFFSET or limit == 0:
        return await database.fetch_all_values(reads.plain, params)
    anchors = _anchors.setdefault(database, PageAnchors())
    async with database.snapshot() as (connection, token):
        if token is None:  # the backend cannot tell whether the data changed
            return await connection.fetch_all_values(reads.plain, params)
        anchor = anchors.find(token, offset)
        if anchor is None:
            rows = await connection.fetch_all_values(reads.plain, params)
        else:
            start, from_id = anchor
            params = {"from_id": from_id, "offset": offset - start, "limit": limit}
            rows = await connection.fetch_all_values(reads.from_anchor, params)
        first_id = reads.first_id(rows)
        if first_id is not None:
            anchors.learn(token, offset, first_id)
        return rows


async def list_heroes(*, database: Database, offset: int, limit: int) -> list[Values]:
    """One page of heroes in id order, as `HeroPublic` values."""
    reads = _SQLITE_PAGE if database.url.backend == "sqlite" else _SERVER_PAGE
    return await _read_page(database, reads, offset, limit)


async def list_heroes_json(*, database: Database, offset: int, limit: int) -> bytes:
    """One page of heroes in id order, as the JSON `list[HeroPublic]` gives: rendered by the
    database on PostgreSQL, here on the others."""
    if database.url.backend != "postgresql":
        return heroes_json(await list_heroes(database=database, offset=offset, limit=limit))
    rows = await _read_page(database, _RENDERED_PAGE, offset, limit)
    return str(rows[0][1]).encode()


async def get_hero(*, database: Database, hero_id: int) -> Values | None:
    """One hero's `HeroPublic` values, or None."""
    return await database.fetch_values(_SELECT_HERO, {"hero_id": hero_id})


async def _get_hero(connection: Connection, hero_id: int) -> Values | None:
    return await connection.fetch_values(_SELECT_HERO, {"hero_id": hero_id})


async def update_hero(
    *, database: Database, hero_id: int, changes: dict[str, Any]
) -> Values | None:
    """Change the given columns of a hero; its `HeroPublic` values, or None if there is none."""
    if not changes:
        return await get_hero(database=database, hero_id=hero_id)
    statement = _update_hero(tuple(sorted(changes)), database.supports_returning)
    params = {**changes, "hero_id": hero_id}
    if database.supports_returning:
        return (await database.write(statement, params)).row
    async with database.transaction() as connection:
        # The UPDATE holds the row's lock until commit, so this reads what it wrote.
        await connection.execute(statement, params)
        return await _get_hero(connection, hero_id)


async def delete_hero(*, database: Database, hero_id: int) -> bool:
    """Delete a hero; False if there was none."""
    result = await database.write(_DELETE_HERO, {"hero_id": hero_id})
    return result.rowcount > 0


_SCHEMA_REVISION = text("SELECT version_num FROM alembic_version")


async def schema_revision(*, database: Database) -> str | None:
    """The Alembic revision the database's schema is at (None if it was never migrated)."""
    row = await database.fetch_one(_SCHEMA_REVISION, {})
    return None if row is None else str(row["version_num"])
