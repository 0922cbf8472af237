"""The heroes: the tutorial's Hero API."""

import bisect
import weakref
from collections.abc import Hashable
from functools import cache
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import (
    Delete,
    ScalarSelect,
    Table,
    Update,
    bindparam,
    delete,
    insert,
    select,
)

from heroapi.crud.listing import (
    Field,
    Kind,
    Listing,
    ListQuery,
    Op,
    Page,
    fetch_page,
    page_of,
    timestamps,
)
from heroapi.crud.modified import last_modified
from heroapi.db import Connection, Database, Values
from heroapi.models import HeroCreate, HeroPublic, hero_table

# Heroes are read as values in `HeroPublic`'s field order (name, age, id), which the routes
# render straight to JSON: no dict, no model instance per row.
_PUBLIC = tuple(hero_table.c[name] for name in HeroPublic.model_fields)
_BY_ID = hero_table.c.id == bindparam("hero_id")

# One hero is read with its `last_modified` (Unix seconds) after the public values, in the same
# query: `GET /heroes/{id}` sends it as `Last-Modified` at no extra round trip.
_SELECT_HERO = select(*_PUBLIC, last_modified(hero_table.c.updated_at)).where(_BY_ID)
HERO_LAST_MODIFIED: Final = len(_PUBLIC)
# Ordered by id: a page is the same on every backend and every call.
_SELECT_HEROES = (
    select(*_PUBLIC).order_by(hero_table.c.id).offset(bindparam("offset")).limit(bindparam("limit"))
)


def page_start(table: Table[Any]) -> ScalarSelect[Any]:
    """The id at `offset` in id order (bind parameter `offset`; NULL past the end), found in the
    primary key's index alone: a deep page is then `id >= page_start` up to its `limit`.

    A scalar subquery rather than a join to a derived table of the page's ids: PostgreSQL's
    generic plan for the prepared join (asyncpg prepares every statement) hashed the whole
    table, twice the time."""
    return (
        select(table.c.id)
        .order_by(table.c.id)
        .offset(bindparam("offset"))
        .limit(1)
        .scalar_subquery()
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
# What a new hero's row is given: HeroCreate's fields (the database adds the id and timestamps).
_INSERTED = tuple(HeroCreate.model_fields)
_INSERT_HERO = insert(hero_table).values({name: bindparam(name) for name in _INSERTED})
_INSERT_HERO_RETURNING = _INSERT_HERO.returning(*_PUBLIC)
# Without RETURNING (MariaDB), a new hero's `HeroPublic` values are picked by name from the values
# inserted and the id the database gave: every public field but the id must be an inserted one.
if _unknown := set(HeroPublic.model_fields) - {*_INSERTED, "id"}:
    raise TypeError(f"HeroPublic fields {sorted(_unknown)} are neither the id nor in HeroCreate")
_public_values = itemgetter(*HeroPublic.model_fields)
_DELETE_HERO: Delete = delete(hero_table).where(_BY_ID)


@cache
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
    values = hero.model_dump()
    if database.supports_returning:
        row = (await database.write(_INSERT_HERO_RETURNING, values)).row
        assert row is not None  # an INSERT ... RETURNING returns its row
        return row
    result = await database.write(_INSERT_HERO, values)
    public: Values = _public_values({**values, "id": result.lastrowid})
    return public


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


async def list_heroes(*, database: Database, offset: int, limit: int) -> list[Values]:
    """One page of heroes in id order, as `HeroPublic` values."""
    plain = _SELECT_HEROES if database.url.backend == "sqlite" else _SELECT_HEROES_DEFERRED
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if offset < PageAnchors.MIN_OFFSET or limit == 0:
        return await database.fetch_all_values(plain, params)
    anchors = _anchors.setdefault(database, PageAnchors())
    async with database.snapshot() as (connection, token):
        if token is None:  # the backend cannot tell whether the data changed
            return await connection.fetch_all_values(plain, params)
        anchor = anchors.find(token, offset)
        if anchor is None:
            rows = await connection.fetch_all_values(plain, params)
        else:
            start, from_id = anchor
            params = {"from_id": from_id, "offset": offset - start, "limit": limit}
            rows = await connection.fetch_all_values(_SELECT_HEROES_FROM, params)
        if rows:
            anchors.learn(token, offset, rows[0][_ID])
        return rows


HEROES: Final = Listing(
    "heroes",
    hero_table,
    _PUBLIC,
    (
        Field("name", hero_table.c.name, Kind.TEXT, (Op.EQ, Op.PREFIX)),
        Field("age", hero_table.c.age, Kind.INT, (Op.EQ, Op.GTE, Op.LTE, Op.NULL)),
        *timestamps(hero_table),
    ),
)
_ID_KEY: Final = (_ID,)


async def hero_page(*, database: Database, query: ListQuery) -> Page:
    """A page of heroes as `HeroPublic` values (and sort values past them, for cursors).

    The tutorial's page (id order, by offset, no filter) keeps its own statements
    (`list_heroes`); any other goes through the listing."""
    if (
        query.filters
        or query.owner_scope
        or query.position is not None
        or query.order != HEROES.default_order
    ):
        return await fetch_page(database, HEROES, query)
    rows = await list_heroes(database=database, offset=query.offset, limit=query.limit + 1)
    return page_of(rows, query, _ID_KEY)


async def get_hero(*, database: Database, hero_id: int) -> Values | None:
    """One hero's `HeroPublic` values followed by its `last_modified`, or None."""
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
