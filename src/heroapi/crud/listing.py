"""Lists that filter, sort, count and page by key: declared once per resource.

A `Listing` names a table's fields, what each can be filtered by (`Op`) and whether it can be
sorted on. Everything else follows from that one declaration: the SQL here, and the query
parameters, their OpenAPI and their validation in `routes/lists.py`.

Semantics, the same on every backend:
- Text compares by Unicode code point (the columns have a binary collation: models.py), so a
  prefix is a range (`name >= 'Sp' AND name < 'Sq'`) that an index serves.
- An order is total: `id` ends it, in the direction of the field before it.
- NULL sorts before every value in ascending order, after every value in descending order
  (SQLite's and MariaDB's own rule; PostgreSQL is told so: `models.nulls_low`).
- A page by key (`Position`) holds the rows strictly after (or before) a row's sort values:
  rows inserted or deleted elsewhere never shift it, unlike an offset.

Statements are built per shape (which filters, which order, which kind of page), compiled once
per database and kept in a bounded cache (`Database.compile_for`): a client choosing among
thousands of combinations costs memory for the recent ones only.
"""

import enum
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
)

from heroapi.db import Database, Statement, Values
from heroapi.models import nulls_low

# -------------------------------------------------------------------------------- declaration


class Op(enum.Enum):
    """A filter's operator, by the suffix its query parameter carries (`age_gte`)."""

    EQ = ""
    PREFIX = "_prefix"
    GTE = "_gte"
    LTE = "_lte"
    NULL = "_null"
    AFTER = "_after"
    BEFORE = "_before"


class Kind(enum.Enum):
    """What a field holds, as query parameters and cursors carry it."""

    INT = "int"
    TEXT = "text"
    BOOL = "bool"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a list: sortable (in `order=`) and filterable by `ops`.

    `stem` names its filters when that differs from `name` (`created_at` -> `created_after`).
    `compared` and `convert` are for a filter that compares another column than the one
    returned: users' `email` filter compares `email_key` with the key of the address given, as
    the login does; `convert` returns None for a value no row can match.
    """

    name: str
    column: Column[Any]
    kind: Kind
    ops: tuple[Op, ...] = ()
    sortable: bool = True
    stem: str | None = None
    compared: Column[Any] | None = None
    convert: Callable[[Any], Any | None] | None = None
    description: str = ""

    @property
    def nullable(self) -> bool:
        return bool(self.column.nullable)


@dataclass(frozen=True, slots=True)
class Filter:
    """A query parameter that filters: `field` compared by `op`."""

    param: str
    field: Field
    op: Op


def timestamps(table: Table[Any]) -> tuple[Field, Field]:
    """Every list's `created_at` and `updated_at`: sortable, and filtered by `_after`/`_before`."""
    return (
        Field("created_at", table.c.created_at, Kind.TIME, (Op.AFTER, Op.BEFORE), stem="created"),
        Field("updated_at", table.c.updated_at, Kind.TIME, (Op.AFTER, Op.BEFORE), stem="updated"),
    )


class Listing:
    """A resource's list: the columns each row returns and the fields it filters and sorts by.

    `name` binds cursors to their list (a heroes cursor is refused by the users list).
    """

    def __init__(
        self, name: str, table: Table[Any], columns: Sequence[Column[Any]], fields: Sequence[Field]
    ) -> None:
        self.name = name
        self.table = table
        self.columns = tuple(columns)
        self.id_field = Field("id", table.c.id, Kind.INT)
        self.fields = {item.name: item for item in (self.id_field, *fields)}
        self.sortable = tuple(name for name, item in self.fields.items() if item.sortable)
        self.filters: dict[str, Filter] = {}
        for item in fields:
            for op in item.ops:
                param = (item.stem or item.name) + op.value
                self.filters[param] = Filter(param, item, op)
        # The stems a misspelt operator is recognised by (`age_gt`: "age takes age, age_gte...").
        self.stems = {
            item.stem or item.name: [f for f in self.filters.values() if f.field is item]
            for item in fields
            if item.ops
        }
        self.default_order: Order = (("id", False),)


# ----------------------------------------------------------------------------------- requests

# (field name, descending), ending with id.
Order = tuple[tuple[str, bool], ...]


class ListError(ValueError):
    """A list request that names something the list does not have (the routes' 422)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_order(listing: Listing, text: str) -> Order:
    """`order=-age,name` as (("age", True), ("name", False), ("id", False)).

    The last field's direction carries to the `id` that breaks ties; an order naming `id`
    ends there (nothing after it could matter)."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        name = part.strip()
        descending = name.startswith("-")
        name = name.removeprefix("-")
        if not name:
            raise ListError("order", "Expected a comma-separated list of fields, e.g. -age,name")
        if name not in listing.fields or not listing.fields[name].sortable:
            allowed = ", ".join(listing.sortable)
            raise ListError("order", f"Cannot sort by {name!r}; sortable fields: {allowed}")
        if any(name == seen for seen, _ in keys):
            raise ListError("order", f"{name!r} is named twice")
        keys.append((name, descending))
        if name == "id":
            break
    if keys[-1][0] != "id":
        keys.append(("id", keys[-1][1]))
    return tuple(keys)


def order_text(order: Order) -> str:
    """An order as `order=` spells it (without the implied trailing id)."""
    keys = order[:-1] if len(order) > 1 else order
    return ",".join(("-" if descending else "") + name for name, descending in keys)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page by key starts: after (or before) the row with these sort values."""

    direction: Literal["after", "before"]
    values: tuple[Any, ...]


@dataclass(slots=True)
class ListQuery:
    """One list request: filters (query parameter -> value), order, and where the page starts:
    a `position`, an `offset`, or the start. `scope` holds equality conditions a route adds
    (an auth rule's `owner_id`)."""

    filters: dict[str, Any] = field(default_factory=dict)
    order: Order = (("id", False),)
    position: Position | None = None
    offset: int = 0
    limit: int = 100
    scope: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Page:
    """One page's rows; the sort values of its first and last rows (what cursors start from);
    and whether rows exist past each end (for `Link` headers)."""

    rows: list[Any]
    first_key: tuple[Any, ...] = ()
    last_key: tuple[Any, ...] = ()
    more_after: bool = False
    more_before: bool = False


# ------------------------------------------------------------------------- values and cursors


def prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with `prefix`, in code point order (so
    `col >= prefix AND col < prefix_end(prefix)` is `col` starts with `prefix`); None if there
    is none (the prefix is all U+10FFFF)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates are not text: the next character is U+E000
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


_SQLITE_TIME: Final = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")
_MILLISECOND: Final = timedelta(milliseconds=1)


def _sqlite_time(moment: datetime, *, round_up: bool) -> str:
    """A moment as SQLite's timestamps are stored (UTC text, milliseconds; models.utc_now).

    Stored values are whole milliseconds: `stored > t` is `stored > floor(t)`, and
    `stored < t` is `stored < ceil(t)`. The text compares as the time only with a four-digit
    year (`isoformat` pads it; `strftime("%Y")` does not, before the year 1000)."""
    moment = moment.astimezone(UTC)
    whole = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if round_up and whole != moment:
        whole += _MILLISECOND
    return whole.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")


def moment_param(backend: str, moment: datetime, op: Op) -> Any:
    """A filter's moment as the backend compares its timestamps (naive values are UTC).

    OverflowError if it is no moment of the years 1 to 9999 in UTC (no backend's either)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # In UTC here, for every backend: a moment that has none is refused as the parameter's
    # (a driver converting it would fail later, as a database error).
    moment = moment.astimezone(UTC)
    if backend == "sqlite":
        return _sqlite_time(moment, round_up=op is Op.BEFORE)
    if backend == "mysql":  # sessions run in UTC (db/mysql.py); TIMESTAMP takes naive values
        return moment.replace(tzinfo=None)
    return moment


def key_to_json(value: Any) -> Any:
    """A sort value as a cursor carries it."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def key_from_json(backend: str, kind: Kind, value: Any) -> Any:
    """A cursor's sort value as the backend gives and compares it; ValueError if it cannot be."""
    if value is None:
        return None
    expected = {Kind.INT: int, Kind.TEXT: str, Kind.BOOL: bool, Kind.TIME: str}[kind]
    if type(value) is not expected:
        raise ValueError(f"a {kind.value} sort value, got {value!r}")
    if isinstance(value, str) and kind is Kind.TIME:
        if backend == "sqlite":
            if not _SQLITE_TIME.fullmatch(value):
                raise ValueError(f"a stored time, got {value!r}")
            return value
        return datetime.fromisoformat(value)
    return value


# ---------------------------------------------------------------------------------- statements


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


def _shape(listing: Listing, query: ListQuery, columns: str) -> Shape:
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
        tuple(sorted(query.scope)),
        query.order,
        None if position is None else position.direction,
        nulls,
        position is None and query.offset > 0,
    )


def _conditions(listing: Listing, query: ListQuery) -> list[ColumnElement[bool]]:
    conditions = [
        _filter_condition(listing.filters[name], value) for name, value in query.filters.items()
    ]
    conditions += [listing.table.c[name] == bindparam("s_" + name) for name in query.scope]
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


def page_statement(listing: Listing, query: ListQuery, *, ids_only: bool = False) -> Select[Any]:
    """The SELECT of one page (bind parameters: filters `f_*`, scope `s_*`, position `k*`,
    `offset` and `limit`); with `ids_only`, just the rows' ids (for joining to them)."""
    position = query.position
    flip = position is not None and position.direction == "before"
    keys = _keys(listing, query.order, flip)
    conditions = _conditions(listing, query)
    if position is not None:
        conditions.append(_after(keys, tuple(value is None for value in position.values)))
    columns = (
        [listing.table.c.id] if ids_only else [*listing.columns, *key_columns(listing, query.order)]
    )
    statement = select(*columns).where(*conditions).order_by(*_order_by(keys))
    if position is None and query.offset > 0:
        statement = statement.offset(bindparam("offset"))
    return statement.limit(bindparam("limit"))


def page_params(listing: Listing, query: ListQuery) -> dict[str, Any]:
    params = filter_params(listing, query.filters)
    params.update({"s_" + name: value for name, value in query.scope.items()})
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
        _shape(listing, query, "ids" if ids_only else "rows"),
        lambda: page_statement(listing, query, ids_only=ids_only),
    )


async def fetch_page(database: Database, listing: Listing, query: ListQuery) -> Page:
    """One page of `listing` for `query`, with one row more fetched to tell if there is a next."""
    statement = compiled_page(database, listing, query)
    rows = await database.fetch_all_values(statement, page_params(listing, query))
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
    page = Page(rows)
    if rows:
        page.first_key = tuple(rows[0][index] for index in keys)
        page.last_key = tuple(rows[-1][index] for index in keys)
    if backwards:
        # The extra row says there are more before; the row the position names is after.
        page.more_after, page.more_before = True, more
    else:
        page.more_after, page.more_before = more, position is not None or query.offset > 0
    return page


# --------------------------------------------------------------------------------------- counts

# `Prefer: count=estimated` counts exactly up to this many rows where the database has no
# planner figure to read (SQLite), then extrapolates.
ESTIMATE_EXACT_UP_TO: Final = 10_000


def count_statement(listing: Listing, query: ListQuery, bound: bool) -> Select[Any]:
    """How many rows match the filters (at most `limit` of them with `bound`)."""
    matching = select(listing.table.c.id).where(*_conditions(listing, query))
    if bound:
        matching = matching.order_by(listing.table.c.id).limit(bindparam("limit"))
    return select(func.count()).select_from(matching.subquery())


def _spread_statement(listing: Listing, query: ListQuery) -> Select[Any]:
    """The first matching id, the `limit`-th one, and the table's largest id."""
    ids = listing.table.c.id
    matching = select(ids).where(*_conditions(listing, query)).order_by(ids)
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
    shape = _shape(listing, query, "count")[:4]
    if mode == "estimated":
        matching = database.compile_for(
            (*shape, "matching"),
            lambda: select(listing.table.c.id).where(*_conditions(listing, query)),
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
