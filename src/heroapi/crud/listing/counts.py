"""How many rows a list's filters match: counted up to a bound, or as the planner estimates.

Every count is bounded: `count_rows` counts at most `limit + 1` matching rows (a subquery with a
LIMIT), so a count costs what reading that many index entries costs, never the whole table.
`Count.at_least` says the list has more rows than the bound, and how many it has at least.

An estimate comes from the planner's figures (PostgreSQL, MariaDB), which are the table's, not
an owner's: a list with an owner scope (an auth rule's owner) is counted, never estimated, so what a
user learns from its count depends on their own rows only.
"""

from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import (
    Select,
    bindparam,
    func,
    select,
)

from heroapi.crud.listing.declaration import Listing, ListQuery
from heroapi.crud.listing.pages import statement_shape, where_clauses, where_params
from heroapi.db import Database

# `Prefer: count=estimated` counts exactly up to this many rows where the database has no
# planner figure to read (SQLite), then extrapolates: ~1 ms of reading on SQLite.
ESTIMATE_EXACT_UP_TO: Final = 1_000


@dataclass(frozen=True, slots=True)
class Count:
    """A list's count: `rows` exactly, or (`at_least`) more than the bound, `rows` at least;
    `estimated` when it is the planner's figure or extrapolated."""

    rows: int
    at_least: bool = False
    estimated: bool = False


def count_statement(listing: Listing, query: ListQuery) -> Select[Any]:
    """How many rows match the filters, up to `limit` of them: in no order, so that the
    database stops after reading that many, in whatever order its plan reads them."""
    matching = select(listing.table.c.id).where(*where_clauses(listing, query))
    return select(func.count()).select_from(matching.limit(bindparam("limit")).subquery())


def _spread_statement(listing: Listing, query: ListQuery) -> Select[Any]:
    """The first matching id, the `limit`-th one, and the table's largest id."""
    ids = listing.table.c.id
    matching = select(ids).where(*where_clauses(listing, query)).order_by(ids)
    return select(
        matching.limit(1).scalar_subquery(),
        matching.offset(bindparam("offset")).limit(1).scalar_subquery(),
        select(func.max(ids)).scalar_subquery(),
    )


async def count_rows(database: Database, listing: Listing, query: ListQuery, limit: int) -> Count:
    """The rows matching `query`'s filters and owner scope, counted up to `limit`: past it, at least
    `limit + 1`."""
    shape = statement_shape(listing, query, "count")[:4]
    counted = database.compile_for((*shape, "bounded"), lambda: count_statement(listing, query))
    row = await database.fetch_values(counted, where_params(listing, query) | {"limit": limit + 1})
    rows = int(row[0]) if row is not None else 0
    return Count(min(rows, limit + 1), at_least=rows > limit)


async def count(
    database: Database,
    listing: Listing,
    query: ListQuery,
    mode: Literal["exact", "estimated"],
    *,
    limit: int,
) -> Count:
    """How many rows the list has with `query`'s filters (its position and page aside): exactly
    up to `limit` (see the module's docstring), or estimated for a list with no owner scope."""
    if mode == "exact" or query.owner_scope:
        return await count_rows(database, listing, query, limit)
    params = where_params(listing, query)
    shape = statement_shape(listing, query, "count")[:4]
    matching = database.compile_for(
        (*shape, "matching"),
        lambda: select(listing.table.c.id).where(*where_clauses(listing, query)),
    )
    estimate = await database.estimated_rows(matching, params)
    if estimate is not None:
        return Count(estimate, estimated=True)
    # No planner figure: exact up to a bound, then spread over the ids past it.
    exact = await count_rows(database, listing, query, ESTIMATE_EXACT_UP_TO - 1)
    if not exact.at_least:
        return Count(exact.rows, estimated=True)
    spread = database.compile_for((*shape, "spread"), lambda: _spread_statement(listing, query))
    first, bound, last = await database.fetch_values(
        spread, params | {"offset": ESTIMATE_EXACT_UP_TO - 1}
    ) or (None, None, None)
    if first is None or bound is None or last is None:
        return Count(exact.rows, estimated=True)
    spread_ids = (int(last) - int(first) + 1) / (int(bound) - int(first) + 1)
    return Count(max(exact.rows, round(exact.rows * spread_ids)), estimated=True)
