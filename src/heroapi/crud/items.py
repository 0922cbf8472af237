"""Items, each owned by a user: the older tutorial's `sql_app`, with the owner's condition in the
same statement as each write when only the owner may make it."""

from functools import cache
from typing import Any, Final

from sqlalchemy import Delete, Select, Update, bindparam, delete, insert, select

from heroapi.crud.listing import Field, Kind, Listing, Op, read_rows, timestamps
from heroapi.db import Database, IntegrityViolation, Values
from heroapi.models import ItemCreate, items_table, last_modified, users_table

ITEM_COLUMNS: Final = (
    items_table.c.id,
    items_table.c.title,
    items_table.c.description,
    items_table.c.owner_id,
)
# An item's values, in this order (`rendering.item_json` reads them so); a single read gives
# its `last_modified` (Unix seconds) after them, at ITEM_LAST_MODIFIED.
ITEM_VALUES: Final = tuple(column.name for column in ITEM_COLUMNS)
ITEM_LAST_MODIFIED: Final = len(ITEM_COLUMNS)

# INSERT ... SELECT: the item is stored only if its owner exists, in one atomic statement.
_INSERT_ITEM = insert(items_table).from_select(
    ["title", "description", "owner_id"],
    select(
        bindparam("title", type_=items_table.c.title.type),
        bindparam("description", type_=items_table.c.description.type),
        users_table.c.id,
    ).where(users_table.c.id == bindparam("user_id")),
)
_INSERT_ITEM_RETURNING = _INSERT_ITEM.returning(*ITEM_COLUMNS)


def _item_filter(statement: Select[Any], *, item_id: bool, owner: bool) -> Select[Any]:
    if item_id:
        statement = statement.where(items_table.c.id == bindparam("item_id"))
    if owner:
        statement = statement.where(items_table.c.owner_id == bindparam("owner_id"))
    return statement


@cache
def _select_item(owner: bool) -> Select[Any]:
    """One item, and when it last changed (`last_modified`)."""
    modified = last_modified(items_table.c.updated_at)
    return _item_filter(select(*ITEM_COLUMNS, modified), item_id=True, owner=owner)


# An item's writes name its owner in the WHERE clause when the requester may touch only their own
# items: the check and the write are one statement, so no ownership read can go stale before it.
@cache
def _update_item(fields: tuple[str, ...], owner: bool, returning: bool) -> Update:
    """The UPDATE for one set of changed columns, with or without the owner's condition."""
    statement = (
        items_table.update()
        .where(items_table.c.id == bindparam("item_id"))
        .values({name: bindparam(name) for name in fields})
    )
    if owner:
        statement = statement.where(items_table.c.owner_id == bindparam("owner_id"))
    return statement.returning(*ITEM_COLUMNS) if returning else statement


@cache
def _delete_item(owner: bool) -> Delete:
    statement = delete(items_table).where(items_table.c.id == bindparam("item_id"))
    if owner:
        statement = statement.where(items_table.c.owner_id == bindparam("owner_id"))
    return statement


async def create_item(*, database: Database, owner_id: int, item: ItemCreate) -> Values | None:
    """A new item of `owner_id`'s; None (and nothing stored) if there is no such user.

    One statement (`Database.write`), where the database returns the row it inserted: a
    transaction of its own, one round trip, SQLite's group commit."""
    values = {"title": item.title, "description": item.description, "user_id": owner_id}
    try:
        if database.dialect.insert_returning:  # MariaDB 10.5+ too (no UPDATE ... RETURNING)
            return (await database.write(_INSERT_ITEM_RETURNING, values)).row
        async with database.transaction() as connection:  # MySQL: inserted, then read
            result = await connection.execute(_INSERT_ITEM, values)
            if result.rowcount == 0:
                return None
            params = {"item_id": result.lastrowid}
            return await connection.fetch_values(_select_item(False), params)
    except IntegrityViolation:  # the owner was deleted while we inserted
        return None


async def get_item(
    *, database: Database, item_id: int, owner_id: int | None = None
) -> Values | None:
    """An item's values and its `last_modified`; with `owner_id`, only if that user owns it."""
    params = {"item_id": item_id, "owner_id": owner_id}
    return await database.fetch_values(_select_item(owner_id is not None), params)


ITEMS: Final = Listing(
    "items",
    items_table,
    ITEM_COLUMNS,
    (
        Field("title", items_table.c.title, Kind.TEXT, (Op.PREFIX,)),
        Field("owner_id", items_table.c.owner_id, Kind.INT, (Op.EQ,)),
        *timestamps(items_table),
    ),
    read=read_rows,  # `query.owner_scope` may hold the `owner_id` an auth rule requires
)


async def update_item(
    *, database: Database, item_id: int, changes: dict[str, Any], owner_id: int | None = None
) -> Values | None:
    """Change the given columns (`title`, `description`) of an item; with `owner_id`, only if that
    user owns it. The item as it now is, or None if there is none (or it is another's)."""
    params = {**changes, "item_id": item_id, "owner_id": owner_id}
    if not changes:
        return await get_item(database=database, item_id=item_id, owner_id=owner_id)
    owner = owner_id is not None
    statement = _update_item(tuple(sorted(changes)), owner, database.supports_returning)
    if database.supports_returning:
        return (await database.write(statement, params)).row
    async with database.transaction() as connection:
        # MariaDB: no UPDATE ... RETURNING. The UPDATE holds the row's lock until commit, so the
        # read sees what it wrote; its rowcount cannot tell "not found" from "already so" (MySQL
        # counts changed rows), so the read, with the same owner condition, decides.
        await connection.execute(statement, params)
        return await connection.fetch_values(_select_item(owner), params)


async def delete_item(*, database: Database, item_id: int, owner_id: int | None = None) -> bool:
    """Delete an item; with `owner_id`, only if that user owns it. False if nothing was deleted."""
    params = {"item_id": item_id, "owner_id": owner_id}
    result = await database.write(_delete_item(owner_id is not None), params)
    return result.rowcount > 0
