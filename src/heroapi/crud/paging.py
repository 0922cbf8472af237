"""Pages in id order, shared by every list."""

from typing import Any

from sqlalchemy import ScalarSelect, Subquery, Table, bindparam, select


def id_page(table: Table[Any]) -> Subquery:
    """The ids of one page of `table` in id order (bind parameters `offset` and `limit`), as a
    derived table to join to: deep pages skip their offset in the primary key's index, and
    MySQL, which allows no LIMIT inside IN (...), accepts it."""
    return (
        select(table.c.id)
        .order_by(table.c.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery("page")
    )


def page_start(table: Table[Any]) -> ScalarSelect[Any]:
    """The id at `offset` in id order (bind parameter `offset`; NULL past the end), found in the
    primary key's index alone: a deep page is then `id >= page_start` up to its `limit`.

    A scalar subquery rather than a join to `id_page()`: PostgreSQL's generic plan for the
    prepared join (asyncpg prepares every statement) hashed the whole table, twice the time."""
    return (
        select(table.c.id)
        .order_by(table.c.id)
        .offset(bindparam("offset"))
        .limit(1)
        .scalar_subquery()
    )
