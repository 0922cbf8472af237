"""How many rows a list's filters match: exactly, or as the planner estimates."""

from typing import Any, Final, Literal

from sqlalchemy import (
    Select,
    bindparam,
    func,
    select,
)

from heroapi.crud.listing.declaration import Listing, ListQuery
from heroapi.crud.listing.pages import filter_params, statement_shape, where_clauses
from heroapi.db import Database

# `Prefer: count=estimated` counts exactly up to this many rows where the database has no
# planner figure to read (SQLite), then extrapolates.
ESTIMATE_EXACT_UP_TO: Final = 10_000


def count_statement(listing: Listing, query: ListQuery, bound: bool) -> Select[Any]:
    """How many rows match the filters (at most `limit` of them with `bound`)."""
    matching = select(listing.table.c.id).where(*where_clauses(listing, query))
    if bound:
        matching = matching.order_by(listing.table.c.id).limit(bindparam("limit"))
    return select(func.count()).select_from(matching.subquery())


def _spread_statement(listing: Listing, query: ListQuery) -> Select[Any]:
    """The first matching id, the `limit`-th one, and the table's largest id."""
    ids = listing.table.c.id
    matching = select(ids).where(*where_clauses(listing, query)).order_by(ids)
    return select(
        matching.limit(1).scalar_subquery(),
        matching.offset(bindparam("offset")).limit(1).scalar_subquery(),
        select(func.max(ids)).scalar_subquery(),
    )


async def count(
    database: Database, listing: Listing, query: ListQuery, mode: Literal["exact", "estimated"]
) -> int:
    """How many rows the list has with `query`'s filters (its position and page aside)."""
    params = filter_params(listing, query.filters)
    params.update({"s_" + name: value for name, value in query.scope.items()})
    shape = statement_shape(listing, query, "count")[:4]
    if mode == "estimated":
        matching = database.compile_for(
            (*shape, "matching"),
            lambda: select(listing.table.c.id).where(*where_clauses(listing, query)),
        )
        estimate = await database.estimated_rows(matching, params)
        if estimate is not None:
            return estimate
        # No planner figure: exact up to a bound, then spread over the ids past it.
        bounded = database.compile_for(
            (*shape, "bounded"), lambda: count_statement(listing, query, bound=True)
        )
        row = await database.fetch_values(bounded, params | {"limit": ESTIMATE_EXACT_UP_TO})
        exact = int(row[0]) if row is not None else 0
        if exact < ESTIMATE_EXACT_UP_TO:
            return exact
        spread = database.compile_for((*shape, "spread"), lambda: _spread_statement(listing, query))
        first, bound, last = await database.fetch_values(
            spread, params | {"offset": ESTIMATE_EXACT_UP_TO - 1}
        ) or (None, None, None)
        if first is None or bound is None or last is None:
            return exact
        spread_ids = (int(last) - int(first) + 1) / (int(bound) - int(first) + 1)
        return max(exact, round(exact * spread_ids))
    counted = database.compile_for(
        (*shape, "exact"), lambda: count_statement(listing, query, False)
    )
    row = await database.fetch_values(counted, params)
    return int(row[0]) if row is not None else 0
