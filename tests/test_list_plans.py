"""The lists' queries are each served by an index, on every backend: no full scan, no sort.

A list page is its rows in the order of one field, then `id` the same way, LIMIT 21, with at
most a filter or a keyset condition (where the previous page ended). `CASES` is the table of
those queries, built from the models (as heroapi builds statements) and compiled by heroapi's
own dialects, each with the index that must serve it. They run on a migrated database of
10,000 rows a table:

- PostgreSQL: EXPLAIN of the statement PREPAREd with its parameters (asyncpg prepares every
  statement the app runs), both the custom plan (for these values) and the generic plan a
  prepared statement may settle on, with sequential scans and sorts switched off: one left in
  the plan means no index can give the rows in order.
- SQLite: EXPLAIN QUERY PLAN searches or scans the intended index, with no temporary B-tree
  for the ORDER BY. No ANALYZE: heroapi never runs one, so these are the plans it gets.
- MariaDB: EXPLAIN, the tables analyzed, uses the intended index and no filesort.
"""

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncmy
import asyncpg
import pytest
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Dialect, make_url

from heroapi import migrate
from heroapi.config import parse_database_url
from heroapi.db import compile_statement
from heroapi.db.mysql import MySQLDatabase
from heroapi.db.postgres import PostgresDatabase
from heroapi.db.sqlite import SQLiteDatabase
from heroapi.models import hero_table, items_table, nulls_low, users_table
from tests.databases import throwaway_database
from tests.test_migrations import run_sync

PAGE: Final = 21
START: Final = datetime(2026, 1, 1, tzinfo=UTC)
# Enough that MariaDB 10.11 reads the first rows of an index rather than the whole table and
# sorts it: with 3,000 short rows (14 pages) it still sorts, the cheaper way at that size.
HEROES, USERS, ITEMS = 10_000, 10_000, 10_000


def page(
    table: Table,
    column_name: str,
    where: ColumnElement[bool] | None = None,
    *,
    descending: bool = False,
) -> Select[Any]:
    """A page of `table` ordered by a column, then `id` the same way (NULL below every value)."""
    column, by_id = table.c[column_name], table.c.id
    order = [by_id.desc() if descending else by_id.asc()]
    if column_name != "id":
        order.insert(0, nulls_low(column, descending=descending))
    statement = select(table).order_by(*order).limit(bindparam("limit"))
    return statement if where is None else statement.where(where)


def after(table: Table, column_name: str, *, descending: bool = False) -> ColumnElement[bool]:
    """Keyset: the rows after the one whose column is :value and id :after_id, in page order."""
    column, by_id = table.c[column_name], table.c.id
    value: BindParameter[Any] = bindparam("value", type_=column.type)
    after_id: BindParameter[Any] = bindparam("after_id", type_=by_id.type)
    if descending:
        return and_(column <= value, or_(column < value, by_id < after_id))
    return and_(column >= value, or_(column > value, by_id > after_id))


@dataclass(frozen=True)
class Case:
    name: str
    statement: Select[Any]
    # The index that must serve it: a name, or "pk" (the table's primary key).
    index: str
    params: dict[str, Any] = field(default_factory=dict)
    # A filter on one value that PostgreSQL may expect many rows to match: it may then read the
    # primary key in id order and keep the matching rows, rightly (a page ends after about
    # PAGE / share rows). Its generic plan, knowing no value, expects a boolean to match half
    # the rows; `age IS NULL` matches 2 % here, and 21 of them are found in about 1,000 ids.
    or_primary_key: bool = False
    # An equality on a unique key: at most one row, so a sort above the index costs nothing.
    one_row: bool = False


def by(table: Table, column_name: str, *, descending: bool = False) -> Case:
    """A page of the whole list in one of its orders."""
    name = f"{table.name} by {column_name} {'descending' if descending else 'ascending'}"
    index = "pk" if column_name == "id" else f"ix_{table.name}_{column_name}_id"
    return Case(name, page(table, column_name, descending=descending), index)


def equal(
    title: str,
    table: Table,
    where: ColumnElement[bool],
    index: str,
    *,
    or_primary_key: bool = False,
    **params: Any,
) -> Case:
    """A page of the rows with one value of a field, in id order: the field is the same in every
    row, and MariaDB would sort the rows of `name = 'x' ORDER BY name, id` (unless the value has
    the column's collation) and of `age IS NULL ORDER BY age, id` (always)."""
    return Case(title, page(table, "id", where), index, params, or_primary_key)


hero, users, items = hero_table.c, users_table.c, items_table.c
LIST_FIELDS = {
    hero_table: ("id", "name", "age", "created_at", "updated_at"),
    users_table: ("id", "email", "is_active", "created_at", "updated_at"),
    items_table: ("id", "title", "owner_id", "created_at", "updated_at"),
}
NAME, LOW, HIGH = "Hero 00042", "Hero 001", "Hero 002"
NOON = START + timedelta(hours=12)
# fmt: off
CASES: Final = [
    # Every order of every list, both ways.
    *(by(table, name, descending=descending)
      for table, names in LIST_FIELDS.items() for name in names for descending in (False, True)),
    # Each filter on one value (see `equal`).
    equal("hero name =", hero_table, hero.name == bindparam("name"), "ix_hero_name_id",
          name=NAME),
    equal("hero age =", hero_table, hero.age == bindparam("age"), "ix_hero_age_id", age=30),
    equal("hero age is null", hero_table, hero.age.is_(None), "ix_hero_age_id",
          or_primary_key=True),
    equal("users is_active =", users_table, users.is_active == bindparam("active"),
          "ix_users_is_active_id", or_primary_key=True, active=False),
    equal("items owner =", items_table, items.owner_id == bindparam("owner"),
          "ix_items_owner_id_id", owner=7),
    Case("users email key =", page(users_table, "id", users.email_key == bindparam("key")),
         "uq_users_email_key", {"key": "user0042@example.com"}, one_row=True),
    # Each range, ordered by its column.
    Case("hero name prefix", page(
        hero_table, "name", and_(hero.name >= bindparam("low"), hero.name < bindparam("high"))),
        "ix_hero_name_id", {"low": LOW, "high": HIGH}),
    Case("hero age >=", page(hero_table, "age", hero.age >= bindparam("age")),
         "ix_hero_age_id", {"age": 30}),
    Case("hero age <=", page(hero_table, "age", hero.age <= bindparam("age"), descending=True),
         "ix_hero_age_id", {"age": 30}),
    Case("hero created after", page(hero_table, "created_at", hero.created_at > bindparam("at")),
         "ix_hero_created_at_id", {"at": NOON}),
    Case("hero updated before", page(
        hero_table, "updated_at", hero.updated_at < bindparam("at"), descending=True),
        "ix_hero_updated_at_id", {"at": NOON}),
    Case("users created after", page(
        users_table, "created_at", users.created_at > bindparam("at")),
        "ix_users_created_at_id", {"at": NOON}),
    Case("items title prefix", page(
        items_table, "title",
        and_(items.title >= bindparam("low"), items.title < bindparam("high"))),
        "ix_items_title_id", {"low": "Item 001", "high": "Item 002"}),
    Case("items updated before", page(
        items_table, "updated_at", items.updated_at < bindparam("at")),
        "ix_items_updated_at_id", {"at": NOON}),
    # The next page: after the last row of this one.
    Case("hero name keyset", page(hero_table, "name", after(hero_table, "name")),
         "ix_hero_name_id", {"value": NAME, "after_id": 42}),
    Case("hero age keyset", page(hero_table, "age", after(hero_table, "age")),
         "ix_hero_age_id", {"value": 30, "after_id": 42}),
    Case("items created keyset descending", page(
        items_table, "created_at", after(items_table, "created_at", descending=True),
        descending=True),
        "ix_items_created_at_id", {"value": NOON, "after_id": 42}),
]
# fmt: on


def stamp(number: int) -> datetime:
    return START + timedelta(seconds=17 * number)


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
            for number in range(1, USERS + 1)
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
                "updated_at": stamp(HEROES - number),
            }
            for number in range(1, HEROES + 1)
        ],
    )
    connection.execute(
        insert(items_table),
        [
            {
                "id": number,
                "title": f"Item {number:05d}",
                "owner_id": number % USERS + 1,
                "created_at": stamp(number),
                "updated_at": stamp(number),
            }
            for number in range(1, ITEMS + 1)
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


def compiled(backend: str, case: Case) -> tuple[str, tuple[Any, ...]]:
    """The case's SQL as heroapi compiles it for `backend`, and its arguments in order."""
    statement = compile_statement(case.statement, DIALECTS[backend])
    params = {"limit": PAGE, **case.params}
    args = tuple(argument(backend, value) for value in statement.args(params))
    return statement.sql, args


def argument(backend: str, value: Any) -> Any:
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        if backend == "sqlite":  # the text heroapi's SQLite timestamps are stored as
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if backend == "mysql":  # TIMESTAMP values, read in a UTC session
            return value.replace(tzinfo=None)
    return value


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
    sql, args = compiled(backend, case)
    if backend == "postgresql":
        primary_key = f"pk_{case.statement.get_final_froms()[0]}"
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
    elif backend == "sqlite":
        details = sqlite_plan(listed_database, sql, args)
        assert not [detail for detail in details if "TEMP B-TREE" in detail], details
        if case.index == "pk":  # the table itself, in rowid order
            assert not [detail for detail in details if "INDEX" in detail], details
        else:
            index = "sqlite_autoindex_users_1" if case.one_row else case.index
            assert [detail for detail in details if f"INDEX {index} " in f"{detail} "], details
    else:
        [row] = asyncio.run(mysql_plan(listed_database, sql, args))
        assert "filesort" not in (row["Extra"] or ""), row
        assert row["key"] == ("PRIMARY" if case.index == "pk" else case.index), row


def test_null_sorts_below_every_value(backend: str, listed_database: str) -> None:
    """`nulls_low`: heroes without an age come first going up and last going down, on every
    backend (PostgreSQL alone would put them the other way round)."""
    ascending = select(hero.age).order_by(nulls_low(hero.age), hero.id)
    descending = select(hero.age).order_by(nulls_low(hero.age, descending=True), hero.id.desc())

    def read(connection: Connection) -> tuple[list[Any], list[Any]]:
        return (
            list(connection.execute(ascending).scalars()),
            list(connection.execute(descending).scalars()),
        )

    up, down = run_sync(parse_database_url(listed_database), read)
    nulls = HEROES // 50
    assert up[:nulls] == [None] * nulls
    assert None not in up[nulls:]
    assert up[nulls:] == sorted(up[nulls:])
    assert down == list(reversed(up))
