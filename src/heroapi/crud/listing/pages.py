"""The SELECT of a page: filters, the keyset condition of a position, the order; run and
read into a `Page`."""

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Select,
    and_,
    bindparam,
    false,
    or_,
    select,
)
from sqlalchemy.engine import Dialect

from heroapi.crud.listing.declaration import (
    Field,
    Filter,
    Listing,
    ListQuery,
    Op,
    Order,
    Page,
    Reads,
)
from heroapi.db import Database, Statement, Values
from heroapi.models import nulls_low


def _filter_condition(item: Filter, value: Any) -> ColumnElement[bool]:
    column = item.field.compared if item.field.compared is not None else item.field.column
    param: BindParameter[Any] = bindparam("f_" + item.param)
    match item.op:
        case Op.EQ:
            return column == param
        case Op.PREFIX:
            lower = column >= param
            if value[1] is None:
                return lower
            return and_(lower, column < bindparam("f_" + item.param + "_end"))
        case Op.GTE:
            return column >= param
        case Op.LTE:
            return column <= param
        case Op.NULL:  # the value is part of the statement's shape, not a parameter
            return column.is_(None) if value else column.is_not(None)
        case Op.AFTER:
            return column > param
        case Op.BEFORE:
            return column < param


def filter_params(listing: Listing, filters: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in filters.items():
        op = listing.filters[name].op
        if op is Op.PREFIX:
            params["f_" + name], params["f_" + name + "_end"] = value
        elif op is not Op.NULL:
            params["f_" + name] = value
    return params


# A statement's shape: which filters (NULL filters with their value), order, kind of page.
Shape = tuple[Any, ...]


def _shape_of(op: Op, value: Any) -> Any:
    """What of a filter's value the statement itself depends on."""
    if op is Op.NULL:
        return bool(value)
    if op is Op.PREFIX:
        return value[1] is None  # no end to the range
    return None


def statement_shape(listing: Listing, query: ListQuery, columns: str) -> Shape:
    filters = tuple(
        sorted(
            (name, _shape_of(listing.filters[name].op, value))
            for name, value in query.filters.items()
        )
    )
    position = query.position
    nulls = None if position is None else tuple(value is None for value in position.values)
    return (
        listing.name,
        columns,
        filters,
        tuple(sorted(query.owner_scope)),
        query.order,
        None if position is None else position.direction,
        nulls,
        query.offset > 0,
    )


def where_clauses(listing: Listing, query: ListQuery) -> list[ColumnElement[bool]]:
    conditions = [
        _filter_condition(listing.filters[name], value) for name, value in query.filters.items()
    ]
    conditions += [listing.table.c[name] == bindparam("s_" + name) for name in query.owner_scope]
    return conditions


def _keys(listing: Listing, order: Order, flip: bool) -> list[tuple[Field, bool]]:
    return [(listing.fields[name], descending != flip) for name, descending in order]


def _after(keys: list[tuple[Field, bool]], nulls: tuple[bool, ...]) -> ColumnElement[bool]:
    """Rows strictly after the position's sort values (`k0`, `k1`, ...) in the order `keys`."""
    condition: ColumnElement[bool] | None = None
    for index in reversed(range(len(keys))):
        key, descending = keys[index]
        param: BindParameter[Any] = bindparam(f"k{index}")
        column, null = key.column, nulls[index]
        # After this key's value: greater (ascending: NULL first) or less (descending: NULL last).
        strict: ColumnElement[bool]
        if not descending:
            strict = column.is_not(None) if null else column > param
        elif null:
            strict = false()
        else:
            strict = or_(column < param, column.is_(None)) if key.nullable else column < param
        if condition is None:
            condition = strict
        else:
            equal = column.is_(None) if null else column == param
            condition = or_(strict, and_(equal, condition))
    assert condition is not None
    # The first key's bound on its own, which an index range serves (the OR chain alone is not
    # one on every backend).
    first, descending = keys[0]
    if not nulls[0] and len(keys) > 1:
        if not descending:
            return and_(first.column >= bindparam("k0"), condition)
        if not first.nullable:
            return and_(first.column <= bindparam("k0"), condition)
    return condition


def _order_by(keys: list[tuple[Field, bool]]) -> list[ColumnElement[Any]]:
    return [nulls_low(key.column, descending=descending) for key, descending in keys]


@functools.lru_cache(maxsize=1024)
def _sort_columns(
    listing: Listing, order: Order
) -> tuple[tuple[Column[Any], ...], tuple[int, ...]]:
    """The sort fields a row needs besides its public columns, to make a cursor from it; and
    where each sort value is in a row of `page_statement`."""
    public = [column.name for column in listing.columns]
    extra = tuple(
        listing.fields[name].column
        for name, _ in order
        if listing.fields[name].column.name not in public
    )
    selected = [*public, *(column.name for column in extra)]
    return extra, tuple(selected.index(listing.fields[name].column.name) for name, _ in order)


def key_columns(listing: Listing, order: Order) -> tuple[Column[Any], ...]:
    return _sort_columns(listing, order)[0]


def key_indexes(listing: Listing, order: Order) -> tuple[int, ...]:
    return _sort_columns(listing, order)[1]


def _from_offset_id(listing: Listing, query: ListQuery) -> ColumnElement[bool]:
    """An id-order offset page as the rows from the id at `offset` on (NULL past the end: no
    rows), that id found in an index of ids alone (the primary key's, or a filter's that ends
    with the id): PostgreSQL reads a page at row 99,900 of 100,000 in ~6 ms so, ~16 ms
    stepping over whole rows; SQLite, whose table is the id index, the same either way.

    A scalar subquery rather than a join to a derived table of the page's ids: PostgreSQL's
    generic plan for the prepared join (asyncpg prepares every statement) hashed the whole
    table, twice the time. MariaDB is the other way round (`_OFFSET_BY_JOIN`)."""
    ids = listing.table.c.id
    descending = query.order[0][1]
    start = (
        select(ids)
        .where(*where_clauses(listing, query))
        .order_by(nulls_low(ids, descending=descending))
        .offset(bindparam("offset"))
        .limit(1)
        .scalar_subquery()
    )
    condition: ColumnElement[bool] = ids <= start if descending else ids >= start
    return condition


# Dialects whose id-order offset page is its ids stepped over with OFFSET, joined back to their
# rows. MariaDB ranges no index over a subquery's value: it read `id >= (SELECT ...)` as the
# whole primary key from its start, each row tested, after the subquery had stepped to the
# offset already (20,000 heroes, a page at row 19,900: 7.4 ms, against 3.7 ms for the join and
# 4.4 ms for a plain OFFSET over the rows). The join reads the page's rows by their key.
_OFFSET_BY_JOIN: Final = frozenset({"mysql"})


def page_statement(
    listing: Listing, query: ListQuery, dialect: Dialect, *, ids_only: bool = False
) -> Select[Any]:
    """The SELECT of one page for `dialect` (bind parameters: filters `f_*`, owner scope
    `s_*`, position `k*`, `offset` and `limit`); with `ids_only`, just the rows' ids (for
    joining to them).

    An offset page in the id order starts at the id at its offset (`_from_offset_id`), or on
    MariaDB is the ids at its offset joined to their rows (`_OFFSET_BY_JOIN`); in another
    order, it steps over its offset. An offset may follow a position: a deep offset page read
    from an anchor (`anchors.py`)."""
    position = query.position
    flip = position is not None and position.direction == "before"
    keys = _keys(listing, query.order, flip)
    conditions = where_clauses(listing, query)
    if position is not None:
        conditions.append(_after(keys, tuple(value is None for value in position.values)))
    by_id = position is None and query.offset > 0 and len(query.order) == 1
    starts_at_id = by_id and dialect.name not in _OFFSET_BY_JOIN
    if starts_at_id:
        conditions.append(_from_offset_id(listing, query))
    table = listing.table
    columns = [table.c.id] if ids_only else [*listing.columns, *key_columns(listing, query.order)]
    order = _order_by(keys)
    statement = select(*columns).where(*conditions).order_by(*order)
    if query.offset > 0 and not starts_at_id:
        statement = statement.offset(bindparam("offset"))
    statement = statement.limit(bindparam("limit"))
    if by_id and not starts_at_id and not ids_only:
        page = statement.with_only_columns(table.c.id).subquery("page")
        joined = table.join(page, table.c.id == page.c.id)
        return select(*columns).select_from(joined).order_by(*order)
    return statement


def where_params(listing: Listing, query: ListQuery) -> dict[str, Any]:
    """The bind parameters of `where_clauses`: the filters' `f_*` and the owner scope's `s_*`."""
    params = filter_params(listing, query.filters)
    params.update({"s_" + name: value for name, value in query.owner_scope.items()})
    return params


def page_params(listing: Listing, query: ListQuery) -> dict[str, Any]:
    params = where_params(listing, query)
    if query.position is not None:
        params.update({f"k{index}": value for index, value in enumerate(query.position.values)})
    # One row more than the page: whether there is a next one.
    params["offset"], params["limit"] = query.offset, query.limit + 1
    return params


def compiled_page(
    database: Database, listing: Listing, query: ListQuery, *, ids_only: bool = False
) -> Statement:
    """`page_statement`, compiled for `database` (once per shape)."""
    return database.compile_for(
        statement_shape(listing, query, "ids" if ids_only else "rows"),
        lambda: page_statement(listing, query, database.dialect, ids_only=ids_only),
    )


async def read_rows(listing: Listing, database: Database, reads: Reads, query: ListQuery) -> Page:
    """One page of `listing` for `query`, run on `reads`, with one row more fetched to tell if
    there is a next: a list's `read` when its rows are its columns' values."""
    statement = compiled_page(database, listing, query)
    rows = await reads.fetch_all_values(statement, page_params(listing, query))
    return page_of(rows, query, key_indexes(listing, query.order))


def page_of(rows: list[Values], query: ListQuery, keys: Sequence[int]) -> Page:
    """The page of `rows`, read with one more than `query.limit` (and backwards for a
    position `before`), whose sort values are at `keys`."""
    more = len(rows) > query.limit
    del rows[query.limit :]
    position = query.position
    backwards = position is not None and position.direction == "before"
    if backwards:
        rows.reverse()
    page = Page(rows, ends=(rows[0], rows[-1]) if rows else None, keys=keys)
    if backwards:
        # The extra row says there are more before; the row the position names is after.
        page.more_after, page.more_before = True, more
    else:
        page.more_after, page.more_before = more, position is not None or query.offset > 0
    return page
