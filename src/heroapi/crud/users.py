"""Users, each read with their items: the older tutorial's `sql_app`, with accounts that can log
in."""

from functools import cache
from typing import Any, Final

from sqlalchemy import Select, Update, bindparam, delete, insert, select
from sqlalchemy.engine import Dialect

from heroapi.crud.items import ITEM_COLUMNS, ITEM_VALUES
from heroapi.crud.listing import (
    Field,
    Kind,
    Listing,
    ListQuery,
    Op,
    Page,
    Reads,
    compiled_page,
    key_indexes,
    page_of,
    page_params,
    page_statement,
    statement_shape,
    timestamps,
)
from heroapi.db import Database, IntegrityViolation, Row, Values
from heroapi.models import (
    email_key,
    items_table,
    last_modified,
    normalized_email,
    users_table,
)
from heroapi.security import new_security_stamp


class EmailAlreadyRegistered(Exception):
    """Another account has this email (compared case-insensitively)."""


def _login_key(email: str) -> str | None:
    """What the login looks an address up by; None if no account can have it."""
    normalized = normalized_email(email)
    return None if normalized is None else email_key(normalized)


_USER = (
    users_table.c.id,
    users_table.c.email,
    users_table.c.is_active,
    users_table.c.is_superuser,
    users_table.c.security_stamp,
)
_USER_BY_ID = users_table.c.id == bindparam("user_id")
_OWNER: Final = ITEM_VALUES.index("owner_id")

_SELECT_USER = select(*_USER).where(_USER_BY_ID)
# A single read also gives the row's `last_modified` (Unix seconds), for `Last-Modified`.
_SELECT_USER_MODIFIED = select(*_USER, last_modified(users_table.c.updated_at)).where(_USER_BY_ID)
# How many values an account's columns are (a page's rows may carry sort values after them).
_ACCOUNT: Final = len(_USER)
# A user read with its items, as values (`rendering.user_json` reads them so): the account's
# columns, then the list of its items' values (`ITEM_VALUES`); a single read gives the account's
# `last_modified` after them, at USER_LAST_MODIFIED.
USER_VALUES: Final = (*(column.name for column in _USER), "items")
USER_LAST_MODIFIED: Final = len(USER_VALUES)
_SELECT_LOGIN = select(*_USER, users_table.c.hashed_password).where(
    users_table.c.email_key == bindparam("email_key")
)
_SELECT_USER_ITEMS = (
    select(*ITEM_COLUMNS)
    .where(items_table.c.owner_id == bindparam("user_id"))
    .order_by(items_table.c.id)
)
# A user with its items, in one query (one round trip on a server database): a row per item
# (its columns after the user's), or one with NULL items for a user who has none.
_SELECT_USER_WITH_ITEMS = (
    select(*_SELECT_USER_MODIFIED.selected_columns, *ITEM_COLUMNS)
    .select_from(users_table.outerjoin(items_table, items_table.c.owner_id == users_table.c.id))
    .where(_USER_BY_ID)
    .order_by(items_table.c.id)
)
_USER_WIDTH: Final = len(_SELECT_USER_MODIFIED.selected_columns)
# Dialects that read a user and their items as two statements: SQLite, which answers in the
# process (no round trip to save), and for which the join costs more, computing `last_modified`
# on every joined row (sqlite3 alone, 5 items: 61-67 us for the two, 85-96 us for the join).
# A server saves a round trip (PostgreSQL, in-process: 181-271 -> 86-150 us per call).
_USER_THEN_ITEMS: Final = frozenset({"sqlite"})
_INSERT_USER = insert(users_table).values(
    email=bindparam("email"),
    email_key=bindparam("email_key"),
    hashed_password=bindparam("hashed_password"),
    is_superuser=bindparam("is_superuser"),
    security_stamp=bindparam("security_stamp"),
)
_INSERT_USER_RETURNING = _INSERT_USER.returning(*_USER)
# Replaces a hash only if it is still the one that was verified: a password change that landed
# in between is never undone.
_REPLACE_HASH = (
    users_table.update()
    .where(_USER_BY_ID, users_table.c.hashed_password == bindparam("verified_hash"))
    .values(hashed_password=bindparam("hashed_password"))
)
_DELETE_USER = delete(users_table).where(_USER_BY_ID)

# Changing any of these gives the account a new security stamp: every earlier token stops working.
REVOKING_CHANGES: Final = frozenset({"hashed_password", "is_active", "is_superuser"})


@cache
def _update_user(fields: tuple[str, ...], expected_hash: bool, returning: bool) -> Update:
    """The UPDATE for one set of changed columns, built once per set (with `expected_hash`, only
    while the stored hash is still the one the caller verified)."""
    values: dict[str, Any] = {name: bindparam(name) for name in fields}
    statement = users_table.update().where(_USER_BY_ID).values(values)
    if expected_hash:
        statement = statement.where(users_table.c.hashed_password == bindparam("verified_hash"))
    return statement.returning(*_USER) if returning else statement


# ------------------------------------------------------------------------------------ users


async def get_user(*, database: Database, user_id: int) -> Row | None:
    """A user's account (without items or password hash)."""
    return await database.fetch_one(_SELECT_USER, {"user_id": user_id})


async def get_user_with_items(*, database: Database, user_id: int) -> Values | None:
    """A user's account as values (`USER_VALUES`: its columns, then its items' values), and when
    it last changed (`last_modified`, Unix seconds) after them, at USER_LAST_MODIFIED."""
    params = {"user_id": user_id}
    if database.dialect.name in _USER_THEN_ITEMS:
        async with database.connection() as connection:
            user = await connection.fetch_values(_SELECT_USER_MODIFIED, params)
            if user is None:
                return None
            items = await connection.fetch_all_values(_SELECT_USER_ITEMS, params)
        return (*user[:_ACCOUNT], items, user[_ACCOUNT])
    rows = await database.fetch_all_values(_SELECT_USER_WITH_ITEMS, params)
    if not rows:
        return None
    # The item's id is NULL in the one row of a user who has none.
    items = [row[_USER_WIDTH:] for row in rows if row[_USER_WIDTH] is not None]
    first = rows[0]
    return (*first[:_ACCOUNT], items, first[_ACCOUNT])


async def get_login(*, database: Database, email: str) -> Row | None:
    """The account `email` logs in to, with its password hash; None if there is none.

    The address is normalized as registration normalizes it (Unicode NFC, the domain's IDNA
    form), so whatever form the user types, it finds the account it registered."""
    key = _login_key(email)
    if key is None:
        return None  # no account can have it (and no database should be asked)
    return await database.fetch_one(_SELECT_LOGIN, {"email_key": key})


async def email_registered(*, database: Database, email: str) -> bool:
    return await get_login(database=database, email=email) is not None


def _page_items(listing: Listing, query: ListQuery, dialect: Dialect) -> Select[Any]:
    """The items of a page of users, in one query whatever the page's size: joined to the
    page's own statement, as a derived table (MySQL allows no LIMIT inside IN (...)).

    Ordered by the page's id, the same as the owner's: by `items.owner_id`, SQLite (which
    does not know the page's size, its LIMIT a parameter) reads every item in the owner index
    to skip a sort, looking each up in the page (tests/test_list_plans.py)."""
    page = page_statement(listing, query, dialect, ids_only=True).subquery("page")
    return (
        select(*ITEM_COLUMNS)
        .select_from(items_table.join(page, items_table.c.owner_id == page.c.id))
        .order_by(page.c.id, items_table.c.id)
    )


async def _read_users_with_items(
    listing: Listing, database: Database, reads: Reads, query: ListQuery
) -> Page:
    """A page of users, each with its items (`USER_VALUES`): two queries, whatever the page
    size."""
    statement = compiled_page(database, listing, query)
    params = page_params(listing, query)
    # Keyed by the page's shape, not its SQL: SQLite's SQL reads `LIMIT ? OFFSET ?` with and
    # without an offset (a literal 0 then), so one text has two sets of parameters.
    items_statement = database.compile_for(
        ("user items", statement_shape(listing, query, "ids")),
        lambda: _page_items(listing, query, database.dialect),
    )
    rows = await reads.fetch_all_values(statement, params)
    page = page_of(rows, query, key_indexes(listing, query.order))
    items = await reads.fetch_all_values(items_statement, params) if page.rows else []
    by_owner: dict[int, list[Values]] = {user[0]: [] for user in page.rows}
    for item in items:
        owned = by_owner.get(item[_OWNER])
        if owned is not None:  # a user created between the two queries may own items
            owned.append(item)
    page.rows = [(*user[:_ACCOUNT], by_owner[user[0]]) for user in page.rows]
    return page


USERS: Final = Listing(
    "users",
    users_table,
    _USER,
    (
        Field(
            "email",
            users_table.c.email,
            Kind.TEXT,
            (Op.EQ,),
            compared=users_table.c.email_key,
            convert=_login_key,
            description="Only the account with this address, compared as the login compares "
            "it (its domain normalized, case-insensitively).",
        ),
        Field("is_active", users_table.c.is_active, Kind.BOOL, (Op.EQ,), sortable=False),
        *timestamps(users_table),
    ),
    read=_read_users_with_items,
)


async def create_user(
    *, database: Database, email: str, hashed_password: str, is_superuser: bool = False
) -> Row:
    """A new, active account; `EmailAlreadyRegistered` if the address is taken."""
    values = {
        "email": email,
        "email_key": email_key(email),
        "hashed_password": hashed_password,
        "is_superuser": is_superuser,
        "security_stamp": new_security_stamp(),
    }
    try:
        async with database.transaction() as connection:
            if database.supports_returning:
                user = await connection.fetch_one(_INSERT_USER_RETURNING, values)
            else:
                result = await connection.execute(_INSERT_USER, values)
                user = await connection.fetch_one(_SELECT_USER, {"user_id": result.lastrowid})
    except IntegrityViolation as error:  # the unique email_key: another account has it
        raise EmailAlreadyRegistered(email) from error
    assert user is not None
    return user | {"items": []}


async def update_user(
    *,
    database: Database,
    user_id: int,
    changes: dict[str, Any],
    verified_hash: str | None = None,
) -> Row | None:
    """Change an account's columns (`email`, `hashed_password`, `is_active`, `is_superuser`).

    A change of the password, `is_active` or `is_superuser` gives the account a new security
    stamp, so every token issued before stops working. With `verified_hash`, nothing changes
    unless the stored hash is still that one. None if no such user (or the hash has changed)."""
    values = dict(changes)
    if "email" in values:
        values["email_key"] = email_key(values["email"])
    if REVOKING_CHANGES.intersection(values):
        values["security_stamp"] = new_security_stamp()
    if not values:
        return await get_user(database=database, user_id=user_id)
    expected = verified_hash is not None
    statement = _update_user(tuple(sorted(values)), expected, database.supports_returning)
    params = values | {"user_id": user_id, "verified_hash": verified_hash}
    try:
        async with database.transaction() as connection:
            if database.supports_returning:
                return await connection.fetch_one(statement, params)
            result = await connection.execute(statement, params)
            if expected and result.rowcount == 0:
                return None
            return await connection.fetch_one(_SELECT_USER, {"user_id": user_id})
    except IntegrityViolation as error:
        raise EmailAlreadyRegistered(values.get("email", "")) from error


async def replace_password_hash(
    *, database: Database, user_id: int, verified_hash: str, hashed_password: str
) -> bool:
    """Store a stronger hash of the same password (tokens stay valid), only if the stored hash
    is still `verified_hash`; False if it changed meanwhile (then nothing is written)."""
    params = {
        "user_id": user_id,
        "verified_hash": verified_hash,
        "hashed_password": hashed_password,
    }
    async with database.transaction() as connection:
        result = await connection.execute(_REPLACE_HASH, params)
    return result.rowcount > 0


async def delete_user(*, database: Database, user_id: int) -> bool:
    """Delete an account and, by the foreign key's ON DELETE CASCADE, its items."""
    async with database.transaction() as connection:
        result = await connection.execute(_DELETE_USER, {"user_id": user_id})
    return result.rowcount > 0
