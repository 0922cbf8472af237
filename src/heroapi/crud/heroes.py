"""The heroes: the tutorial's Hero API."""

from functools import cache
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import (
    Delete,
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
    Op,
    read_rows,
    timestamps,
)
from heroapi.db import Connection, Database, Values
from heroapi.models import HeroCreate, HeroPublic, hero_table, last_modified

# Heroes are read as values in `HeroPublic`'s field order (name, age, id), which the routes
# render straight to JSON: no dict, no model instance per row.
_PUBLIC = tuple(hero_table.c[name] for name in HeroPublic.model_fields)
_BY_ID = hero_table.c.id == bindparam("hero_id")

# One hero is read with its `last_modified` (Unix seconds) after the public values, in the same
# query: `GET /heroes/{id}` sends it as `Last-Modified` at no extra round trip.
_SELECT_HERO = select(*_PUBLIC, last_modified(hero_table.c.updated_at)).where(_BY_ID)
HERO_LAST_MODIFIED: Final = len(_PUBLIC)
# What a new hero's row is given: HeroCreate's fields (the database adds the id and timestamps).
_INSERTED = tuple(HeroCreate.model_fields)
_INSERT_HERO = insert(hero_table).values({name: bindparam(name) for name in _INSERTED})
_INSERT_HERO_RETURNING = _INSERT_HERO.returning(*_PUBLIC)
# Without RETURNING (MariaDB), a new hero's `HeroPublic` values are picked by name from the values
# inserted and the id the database gave: every public field but the id must be an inserted one.
if _unknown := set(HeroPublic.model_fields) - {*_INSERTED, "id"}:
    raise TypeError(f"HeroPublic fields {sorted(_unknown)} are neither the id nor in HeroCreate")
_public_values = itemgetter(*HeroPublic.model_fields)
# An update that sends these is answered from them and the id, without reading the row back.
_ANSWERED_BY_CHANGES: Final = frozenset(HeroPublic.model_fields) - {"id"}
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


HEROES: Final = Listing(
    "heroes",
    hero_table,
    _PUBLIC,
    (
        Field("name", hero_table.c.name, Kind.TEXT, (Op.EQ, Op.PREFIX)),
        Field("age", hero_table.c.age, Kind.INT, (Op.EQ, Op.GTE, Op.LTE, Op.NULL)),
        *timestamps(hero_table),
    ),
    read=read_rows,
)


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
    if _ANSWERED_BY_CHANGES.issubset(changes):
        # Every public value is one sent (MariaDB stores it as sent, or refuses it): the UPDATE
        # alone, its row count saying whether the hero exists (the rows it matched).
        if (await database.write(statement, params)).rowcount == 0:
            return None
        updated: Values = _public_values({**changes, "id": hero_id})
        return updated
    async with database.transaction() as connection:
        # The UPDATE holds the row's lock until commit, so this reads what it wrote.
        await connection.execute(statement, params)
        return await _get_hero(connection, hero_id)


async def delete_hero(*, database: Database, hero_id: int) -> bool:
    """Delete a hero; False if there was none."""
    result = await database.write(_DELETE_HERO, {"hero_id": hero_id})
    return result.rowcount > 0
