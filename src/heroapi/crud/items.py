"""Items, each owned by a user: the older tutorial's `sql_app`, with the owner's condition in the
same statement as each write when only the owner may make it."""

from functools import cache
from typing import Any, Final

from sqlalchemy import Delete, Select, Update, bindparam, delete, insert, select

from heroapi.crud.listing import (
    Field,
    Kind,
    Listing,
    ListQuery,
    Op,
    Page,
    Reads,
    read_rows,
    timestamps,
)
from heroapi.db import Connection, Database, IntegrityViolation, Row, as_dicts
from heroapi.models import ItemCreate, items_table, last_modified, users_table

ITEM_COLUMNS: Final = (
    items_table.c.id,
    items_table.c.title,
    items_table.c.description,
    items_table.c.owner_id,
)
_ITEM_NAMES: Final = tuple(column.name for column in ITEM_COLUMNS)

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


async def create_item(*, database: Database, owner_id: int, item: ItemCreate) -> Row | None:
    """A new item of `owner_id`'s; None (and nothing stored) if there is no such user."""
    values = {"title": item.title, "description": item.description, "user_id": owner_id}
    try:
        if database.dialect.insert_returning:  # one statement, its own transaction
            row = (await database.write(_INSERT_ITEM_RETURNING, values)).row
            return None if row is None else dict(zip(_ITEM_NAMES, row, strict=True))
        async with database.transaction() as connection:
            return await _insert_item(connection, values)
    except IntegrityViolation:  # the owner was deleted while we inserted
        return None


async def _insert_item(connection: Connection, values: dict[str, Any]) -> Row | None:
    """The item, inserted and then read (MySQL: no INSERT ... RETURNING)."""
    result = await connection.execute(_INSERT_ITEM, values)
    if result.rowcount == 0:
        return None
    return await connection.fetch_one(_select_item(False), {"item_id": result.lastrowid})


async def get_item(*, database: Database, item_id: int, owner_id: int | None = None) -> Row | None:
    """An item and its `last_modified`; with `owner_id`, only if that user owns it."""
    params = {"item_id": item_id, "owner_id": owner_id}
    return await database.fetch_one(_select_item(owner_id is not None), params)


async def _read_items(listing: Listing, database: Database, reads: Reads, query: ListQuery) -> Page:
    """A page of items, as dicts (`query.owner_scope` may hold the `owner_id` an auth rule
    requires)."""
    page = await read_rows(listing, database, reads, query)
    page.rows = as_dicts(_ITEM_NAMES, page.rows)
    return page


ITEMS: Final = Listing(
    "items",
    items_table,
    ITEM_COLUMNS,
    (
        Field("title", items_table.c.title, Kind.TEXT, (Op.PREFIX,)),
        Field("owner_id", items_table.c.owner_id, Kind.INT, (Op.EQ,)),
        *timestamps(items_table),
    ),
    read=_read_items,
)


async def update_item(
    *, database: Database, item_id: int, changes: dict[str, Any], owner_id: int | None = None
) -> Row | None:
    """Change the given columns (`title`, `description`) of an item; with `owner_id`, only if that
    user owns it. The item as it now is, or None if there is none (or it is another's)."""
    params = {**changes, "item_id": item_id, "owner_id": owner_id}
    if not changes:
        return await get_item(database=database, item_id=item_id, owner_id=owner_id)
    owner = owner_id is not None
    statement = _update_item(tuple(sorted(changes)), owner, database.supports_returning)
    if database.supports_returning:
        row = (await database.write(statement, params)).row
        return None if row is None else dict(zip(_ITEM_NAMES, row, strict=True))
    async with database.transaction() as connection:
        # MariaDB: no UPDATE ... RETURNING. The UPDATE holds the row's lock until commit, so the
        # read sees what it wrote; its rowcount cannot tell "not found" from "already so" (MySQL
        # counts changed rows), so the read, with the same owner condition, decides.
        await connection.execute(statement, params)
        return await connection.fetch_one(_select_item(owner), params)


async def delete_item(*, database: Database, item_id: int, owner_id: int | None = None) -> bool:
    """Delete an item; with `owner_id`, only if that user owns it. False if nothing was deleted."""
    params = {"item_id": item_id, "owner_id": owner_id}
    result = await database.write(_delete_item(owner_id is not None), params)
    return result.rowcount > 0
