"""The lists' queries are each served by an index, on every backend: no full scan, no sort.

A list page is its rows in the order of one field, then `id` the same way, LIMIT 101 (the
routes' default page of 100, and one row to tell if there is a next), with at most a filter or
a keyset condition (where the previous page ended). `CASES` are list requests: each is checked
with the statement the list runs for it (`page_statement`, with `page_params`), its values
converted as `routes/lists.py` converts a request's, compiled by heroapi's own dialects, with
the index that must serve it. A page of users also reads its users' items (`_page_items`):
those are found by owner in their index, and then sorted (a page's items, a bounded set). They
run on a migrated database of 40,000 rows a table:

- PostgreSQL: EXPLAIN of the statement PREPAREd with its parameters (asyncpg prepares every
  statement the app runs), both the custom plan (for these values) and the generic plan a
  prepared statement may settle on, with sequential scans and sorts switched off: one left in
  the plan means no index can give the rows in order. A filter or a position is an Index Cond.
- SQLite: EXPLAIN QUERY PLAN scans the intended index (searches it, with a filter or a
  position), with no temporary B-tree for the ORDER BY. No ANALYZE: heroapi never runs one, so
  these are the plans it gets.
- MariaDB: EXPLAIN, the tables analyzed, uses the intended index (a range or a value of it,
  with a filter or a position) and no filesort.
"""

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncmy
import asyncpg
import pytest
from sqlalchemy import Connection, Select, insert, select, text
from sqlalchemy.engine import Dialect, make_url

from heroapi import migrate
from heroapi.config import parse_database_url
from heroapi.crud import HEROES, ITEMS, USERS
from heroapi.crud.listing import (
    Filter,
    Kind,
    Listing,
    ListQuery,
    Op,
    Position,
    key_from_json,
    key_to_json,
    moment_param,
    page_params,
    page_statement,
    parse_order,
    prefix_end,
)
from heroapi.crud.users import _page_items
from heroapi.db import compile_statement
from heroapi.db.mysql import MySQLDatabase
from heroapi.db.postgres import PostgresDatabase
from heroapi.db.sqlite import SQLiteDatabase
from heroapi.models import hero_table, items_table, nulls_low, users_table
from tests.databases import run_sync, throwaway_database

START: Final = datetime(2026, 1, 1, tzinfo=UTC)
# Enough that MariaDB 10.11 reads the first 101 rows of an index rather than the whole table
# and sorts it: with 20,000 rows it still sorts heroes by name, the cheaper way at that size
# (30,000 are enough; the rest is headroom).
HERO_ROWS, USER_ROWS, ITEM_ROWS = 40_000, 40_000, 40_000


def stamp(number: int) -> datetime:
    """Row `number`'s `created_at` (and the `updated_at` of some)."""
    return START + timedelta(seconds=17 * number)


@dataclass(frozen=True)
class Case:
    """A list request: `filters` as the request gives them (before `routes/lists.py` converts
    them), `order` as `order=` spells it, and the page's start (`position`: after or before the
    row whose sort values these are)."""

    name: str
    listing: Listing
    # The index that must serve it: a name, or "pk" (the table's primary key).
    index: str
    order: str = "id"
    filters: dict[str, Any] = field(default_factory=dict)
    position: tuple[Literal["after", "before"], tuple[Any, ...]] | None = None
    # A filter on one value that PostgreSQL may expect many rows to match: it may then read the
    # primary key in id order and keep the matching rows, rightly (a page ends after about
    # 101 / share rows). Its generic plan, knowing no value, expects a boolean to match half
    # the rows; `age IS NULL` matches 2 % here, and 101 of them are found in about 5,000 ids.
    or_primary_key: bool = False
    # An equality on a unique key: at most one row, so a sort above the index costs nothing.
    one_row: bool = False
    # A position at a NULL value: the rows after it are the rest of the NULLs, then every
    # value, which no one range of the index holds; it is read from its start (past at most
    # the NULLs). Any other filter or position bounds the index read (`bounded`).
    from_start: bool = False

    @property
    def bounded(self) -> bool:
        """The index is read within a range or at a value, not from its start and filtered: a
        page deep in the list reads no more than its own rows."""
        return bool(self.filters or self.position) and not self.from_start


def by(listing: Listing, order: str) -> Case:
    """A page of the whole list in one of its orders."""
    name = order.removeprefix("-")
    column = listing.fields[name].column.name
    index = "pk" if name == "id" else f"ix_{listing.table.name}_{column}_id"
    direction = "descending" if order.startswith("-") else "ascending"
    return Case(f"{listing.name} by {name} {direction}", listing, index, order)


# Rows of `fill`: hero 42 (age 42; hero 50 has none), item 42.
HERO_NAME, HERO_ID = "Hero 00042", 42
NOON: Final = START + timedelta(hours=12)
LISTINGS: Final = (HEROES, USERS, ITEMS)
# fmt: off
CASES: Final = [
    # Every order of every list, both ways.
    *(by(listing, sign + name)
      for listing in LISTINGS for name in listing.sortable for sign in ("", "-")),
    # Each filter on one value, in the default (id) order.
    Case("heroes name =", HEROES, "ix_hero_name_id", filters={"name": HERO_NAME}),
    Case("heroes age =", HEROES, "ix_hero_age_id", filters={"age": 30}),
    Case("heroes age is null", HEROES, "ix_hero_age_id", filters={"age_null": True},
         or_primary_key=True),
    Case("users is_active =", USERS, "ix_users_is_active_id", filters={"is_active": False},
         or_primary_key=True),
    Case("users email =", USERS, "uq_users_email_key",
         filters={"email": "user0042@example.com"}, one_row=True),
    Case("items owner =", ITEMS, "ix_items_owner_id_id", filters={"owner_id": 7}),
    # Each range, ordered by its field.
    Case("heroes name prefix", HEROES, "ix_hero_name_id", "name",
         {"name_prefix": "Hero 001"}),
    Case("heroes age >=", HEROES, "ix_hero_age_id", "age", {"age_gte": 30}),
    Case("heroes age <=", HEROES, "ix_hero_age_id", "-age", {"age_lte": 30}),
    Case("heroes created after", HEROES, "ix_hero_created_at_id", "created_at",
         {"created_after": NOON}),
    Case("heroes updated before", HEROES, "ix_hero_updated_at_id", "-updated_at",
         {"updated_before": NOON}),
    Case("users created after", USERS, "ix_users_created_at_id", "created_at",
         {"created_after": NOON}),
    Case("items title prefix", ITEMS, "ix_items_title_id", "title",
         {"title_prefix": "Item 001"}),
    Case("items updated before", ITEMS, "ix_items_updated_at_id", "updated_at",
         {"updated_before": NOON}),
    # The next page: after the last row of this one (and the page before a row).
    Case("heroes name keyset", HEROES, "ix_hero_name_id", "name",
         position=("after", (HERO_NAME, HERO_ID))),
    Case("heroes name keyset backwards", HEROES, "ix_hero_name_id", "name",
         position=("before", (HERO_NAME, HERO_ID))),
    Case("heroes age keyset", HEROES, "ix_hero_age_id", "age", position=("after", (42, 42))),
    Case("heroes age keyset from null", HEROES, "ix_hero_age_id", "age",
         position=("after", (None, 50)), from_start=True),
    Case("items created keyset descending", ITEMS, "ix_items_created_at_id", "-created_at",
         position=("after", (stamp(42), 42))),
]
# fmt: on


def request_value(backend: str, item: Filter, value: Any) -> Any:
    """A filter's value as `routes/lists.py` hands it to the list."""
    if item.field.convert is not None:
        value = item.field.convert(value)
    if item.op is Op.PREFIX:
        return (value, prefix_end(value))
    if item.field.kind is Kind.TIME:
        return moment_param(backend, value, item.op)
    return value


def cursor_value(backend: str, kind: Kind, value: Any) -> Any:
    """A row's sort value as a cursor brings it back: as the backend gives it (a time: how
    `moment_param` writes it, the stored form), through the cursor's JSON."""
    if kind is Kind.TIME:
        value = moment_param(backend, value, Op.AFTER)
    return key_from_json(backend, kind, key_to_json(value))


def list_query(backend: str, case: Case) -> ListQuery:
    """The `ListQuery` that `routes/lists.py` makes of the case's request."""
    listing = case.listing
    query = ListQuery(order=parse_order(listing, case.order), limit=100)
    for name, value in case.filters.items():
        query.filters[name] = request_value(backend, listing.filters[name], value)
    if case.position is not None:
        direction, values = case.position
        kinds = [listing.fields[name].kind for name, _ in query.order]
        keys = zip(kinds, values, strict=True)
        query.position = Position(
            direction, tuple(cursor_value(backend, kind, value) for kind, value in keys)
        )
    return query


def fill(connection: Connection) -> None:
    """Thousands of rows, with distinct times (rows inserted in one transaction would share
    one), a NULL age in one hero in 50 and one user in 50 inactive."""
    binary_key = connection.dialect.name == "mysql"  # VARBINARY there
    connection.execute(
        insert(users_table),
        [
            {
                "id": number,
                "email": f"user{number:04d}@example.com",
                "email_key": key.encode() if binary_key else key,
                "hashed_password": "x",
                "is_active": number % 50 != 0,
                "created_at": stamp(number),
                "updated_at": stamp(number),
            }
            for number in range(1, USER_ROWS + 1)
            for key in [f"user{number:04d}@example.com"]
        ],
    )
    connection.execute(
        insert(hero_table),
        [
            {
                "id": number,
                "name": f"Hero {number:05d}",
                "age": None if number % 50 == 0 else number % 90,
                "secret_name": "s",
                "created_at": stamp(number),
                "updated_at": stamp(HERO_ROWS - number),
            }
            for number in range(1, HERO_ROWS + 1)
        ],
    )
    connection.execute(
        insert(items_table),
        [
            {
                "id": number,
                "title": f"Item {number:05d}",
                "owner_id": number % USER_ROWS + 1,
                "created_at": stamp(number),
                "updated_at": stamp(number),
            }
            for number in range(1, ITEM_ROWS + 1)
        ],
    )


@pytest.fixture(scope="module")
def listed_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of this module's own, filled (and analyzed on the servers)."""
    with throwaway_database(backend, tmp_path_factory.mktemp(f"plans-{backend}")) as url:
        database = parse_database_url(url)
        migrate.upgrade(database)
        run_sync(database, fill)
        if backend == "postgresql":
            run_sync(database, lambda connection: connection.execute(text("ANALYZE")))
        elif backend == "mysql":
            run_sync(
                database,
                lambda connection: connection.execute(text("ANALYZE TABLE hero, users, items")),
            )
        yield url


DIALECTS: Final[dict[str, Dialect]] = {
    "sqlite": SQLiteDatabase.dialect,
    "postgresql": PostgresDatabase.dialect,
    "mysql": MySQLDatabase.dialect,
}


def compiled(
    backend: str, statement: Select[Any], params: dict[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    """`statement` as heroapi compiles it for `backend`, and its arguments in order."""
    sql = compile_statement(statement, DIALECTS[backend])
    return sql.sql, sql.args(params)


def sqlite_plan(url: str, sql: str, args: tuple[Any, ...]) -> list[str]:
    connection = sqlite3.connect(make_url(url).database or "")
    try:
        return [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    finally:
        connection.close()


def sql_literal(value: Any) -> str:
    """A value written into EXECUTE's arguments (ours alone: names, numbers, times)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(value).lower()
    if isinstance(value, datetime):
        value = value.isoformat()
    assert isinstance(value, str)
    return "'" + value.replace("'", "''") + "'"


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


async def postgres_plans(
    url: str, sql: str, args: tuple[Any, ...], *, sorts: bool
) -> dict[str, list[dict[str, Any]]]:
    """The plan nodes of `sql` prepared, for its custom and its generic plan."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SET enable_seqscan = off")
        if not sorts:
            await connection.execute("SET enable_sort = off")
        await connection.execute(f"PREPARE list_page AS {sql}")
        execute = f"EXECUTE list_page({', '.join(sql_literal(value) for value in args)})"
        plans = {}
        for mode in ("force_custom_plan", "force_generic_plan"):
            await connection.execute(f"SET plan_cache_mode = {mode}")
            explained = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
            plans[mode] = list(plan_nodes(json.loads(explained)[0]["Plan"]))
        return plans
    finally:
        await connection.close()


async def mysql_plan(url: str, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    parsed = make_url(url)
    connection = await asyncmy.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        charset="utf8mb4",
    )
    try:
        async with connection.cursor(asyncmy.cursors.DictCursor) as cursor:
            await cursor.execute("SET time_zone = '+00:00'")
            await cursor.execute(f"EXPLAIN {sql}", args)
            rows: list[dict[str, Any]] = await cursor.fetchall()
            return rows
    finally:
        connection.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_query_is_served_by_its_index(backend: str, listed_database: str, case: Case) -> None:
    query = list_query(backend, case)
    sql, args = compiled(
        backend,
        page_statement(case.listing, query, DIALECTS[backend]),
        page_params(case.listing, query),
    )
    if backend == "postgresql":
        primary_key = f"pk_{case.listing.table.name}"
        index = primary_key if case.index == "pk" else case.index
        plans = asyncio.run(postgres_plans(listed_database, sql, args, sorts=case.one_row))
        for mode, nodes in plans.items():
            kinds = [node["Node Type"] for node in nodes]
            assert "Seq Scan" not in kinds, (mode, kinds)
            if not case.one_row:
                assert not [kind for kind in kinds if "Sort" in kind], (mode, kinds)
            used = {node["Index Name"] for node in nodes if "Index Name" in node}
            allowed = {index, primary_key} if case.or_primary_key else {index}
            assert used, (mode, nodes)
            assert used <= allowed, (mode, used)
            if case.bounded:
                reads = [node for node in nodes if node.get("Index Name") == index]
                assert all("Index Cond" in node for node in reads), (mode, reads)
    elif backend == "sqlite":
        details = sqlite_plan(listed_database, sql, args)
        assert not [detail for detail in details if "TEMP B-TREE" in detail], details
        if case.index == "pk":  # the table itself, in rowid order
            assert not [detail for detail in details if "INDEX" in detail], details
        else:
            index = "sqlite_autoindex_users_1" if case.one_row else case.index
            steps = [detail for detail in details if f"INDEX {index} " in f"{detail} "]
            assert steps, details
            if case.bounded:
                assert all(step.startswith("SEARCH ") for step in steps), details
    else:
        [row] = asyncio.run(mysql_plan(listed_database, sql, args))
        assert "filesort" not in (row["Extra"] or ""), row
        assert row["key"] == ("PRIMARY" if case.index == "pk" else case.index), row
        if case.bounded:
            assert row["type"] in ("const", "ref", "range"), row


USER_PAGES: Final = [case for case in CASES if case.listing is USERS]
OWNER_INDEX: Final = "ix_items_owner_id_id"


@pytest.mark.parametrize("case", USER_PAGES, ids=[case.name for case in USER_PAGES])
def test_the_users_page_items_are_found_by_owner(
    backend: str, listed_database: str, case: Case
) -> None:
    """A page of users reads their items in a second query, joined to the page's ids
    (`_page_items`): each user's items are found in the owner index, however many items the
    table holds, then sorted (a page's items: sorts are allowed). The page is read as above."""
    query = list_query(backend, case)
    sql, args = compiled(
        backend, _page_items(USERS, query, DIALECTS[backend]), page_params(USERS, query)
    )
    if backend == "postgresql":
        index = "pk_users" if case.index == "pk" else case.index
        page_indexes = {index, "pk_users"} if case.or_primary_key else {index}
        plans = asyncio.run(postgres_plans(listed_database, sql, args, sorts=True))
        for mode, nodes in plans.items():
            kinds = [node["Node Type"] for node in nodes]
            assert "Seq Scan" not in kinds, (mode, kinds)
            used = {node["Index Name"] for node in nodes if "Index Name" in node}
            assert OWNER_INDEX in used, (mode, used)
            assert used <= page_indexes | {OWNER_INDEX}, (mode, used)
        # By each of the page's ids. Not asked of the generic plan: knowing no LIMIT, it expects
        # a tenth of the users and may merge them with the whole index in order (PostgreSQL
        # settles on a generic plan only if it costs no more than the custom ones).
        lookups = [
            node for node in plans["force_custom_plan"] if node.get("Index Name") == OWNER_INDEX
        ]
        assert lookups, plans["force_custom_plan"]
        assert all("owner_id = " in node.get("Index Cond", "") for node in lookups), lookups
    elif backend == "sqlite":
        details = sqlite_plan(listed_database, sql, args)
        assert f"SEARCH items USING INDEX {OWNER_INDEX} (owner_id=?)" in details, details
        assert not [detail for detail in details if detail.startswith("SCAN items")], details
        if case.index != "pk":
            index = "sqlite_autoindex_users_1" if case.one_row else case.index
            assert [detail for detail in details if f"INDEX {index} " in f"{detail} "], details
    else:
        rows = {row["table"]: row for row in asyncio.run(mysql_plan(listed_database, sql, args))}
        assert (rows["items"]["key"], rows["items"]["type"]) == (OWNER_INDEX, "ref"), rows
        page_key = "PRIMARY" if case.index == "pk" else case.index
        assert rows["users"]["key"] == page_key, rows


def test_null_sorts_below_every_value(backend: str, listed_database: str) -> None:
    """`nulls_low`: heroes without an age come first going up and last going down, on every
    backend (PostgreSQL alone would put them the other way round)."""
    hero = hero_table.c
    ascending = select(hero.age).order_by(nulls_low(hero.age), hero.id)
    descending = select(hero.age).order_by(nulls_low(hero.age, descending=True), hero.id.desc())

    def read(connection: Connection) -> tuple[list[Any], list[Any]]:
        return (
            list(connection.execute(ascending).scalars()),
            list(connection.execute(descending).scalars()),
        )

    up, down = run_sync(parse_database_url(listed_database), read)
    nulls = HERO_ROWS // 50
    assert up[:nulls] == [None] * nulls
    assert None not in up[nulls:]
    assert up[nulls:] == sorted(up[nulls:])
    assert down == list(reversed(up))


DEEP_OFFSET: Final = 30_000


@pytest.mark.parametrize("listing", LISTINGS, ids=[listing.name for listing in LISTINGS])
def test_a_deep_id_order_offset_page_reads_its_rows_by_key(
    backend: str, listed_database: str, listing: Listing
) -> None:
    """An id-order page at offset 30,000 (read without a page anchor) steps over the ids alone
    and then reads its own rows by their key, not the table from its start: PostgreSQL and
    SQLite from the id at the offset on (a range of the primary key, its bound a subquery),
    MariaDB, which ranges no index over a subquery's value, by joining the page's ids to their
    rows (`pages._OFFSET_BY_JOIN`)."""
    query = ListQuery(order=parse_order(listing, "id"), limit=100, offset=DEEP_OFFSET)
    statement = page_statement(listing, query, DIALECTS[backend])
    sql, args = compiled(backend, statement, page_params(listing, query))
    table = listing.table.name
    if backend == "postgresql":
        plans = asyncio.run(postgres_plans(listed_database, sql, args, sorts=False))
        for mode, nodes in plans.items():
            kinds = [node["Node Type"] for node in nodes]
            assert "Seq Scan" not in kinds, (mode, kinds)
            reads = [node for node in nodes if node.get("Index Name") == f"pk_{table}"]
            assert any("Index Cond" in node for node in reads), (mode, reads)
    elif backend == "sqlite":
        details = sqlite_plan(listed_database, sql, args)
        assert f"SEARCH {table} USING INTEGER PRIMARY KEY (rowid>?)" in details, details
    else:
        rows = asyncio.run(mysql_plan(listed_database, sql, args))
        page_rows = [row for row in rows if row["table"] == table and row["id"] == 1]
        assert [(row["key"], row["type"]) for row in page_rows] == [("PRIMARY", "eq_ref")], rows
