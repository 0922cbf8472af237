"""Pages in id order, shared by every list."""

from typing import Any

from sqlalchemy import Subquery, Table, bindparam, select


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
