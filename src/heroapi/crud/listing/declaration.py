"""A list's declaration (`Listing`, its `Field`s and their `Op`s) and one request of it
(`ListQuery`), with the page it reads (`Page`)."""

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import Column, Table

from heroapi.db import SQL, Database, Params, Row, Values


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


class Reads(Protocol):
    """What a page's statements run on: the database, or one connection of it (a snapshot)."""

    async def fetch_all(self, clause: SQL, params: Params) -> list[Row]: ...

    async def fetch_all_values(self, clause: SQL, params: Params) -> list[Values]: ...


# How a list reads one page: its statements compiled for the database, run on `Reads`.
PageReader = Callable[["Listing", Database, Reads, "ListQuery"], Awaitable["Page"]]


class Listing:
    """A resource's list: the columns each row returns, the fields it filters and sorts by, and
    how it reads a page (`read`: `pages.read_rows`, or that and more, such as each user's items).

    `name` binds cursors to their list (a heroes cursor is refused by the users list).
    """

    def __init__(
        self,
        name: str,
        table: Table[Any],
        columns: Sequence[Column[Any]],
        fields: Sequence[Field],
        *,
        read: PageReader,
    ) -> None:
        self.name = name
        self._read = read
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

    async def read(self, database: Database, reads: Reads, query: "ListQuery") -> "Page":
        """One page of the list for `query`, its statements compiled for `database` and run on
        `reads`: what `fetch_page` calls, deep offset pages translated (`anchors.py`)."""
        return await self._read(self, database, reads, query)


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
    """An order as `order=` spells it, which `parse_order` reads back as `order`: the trailing
    id is left out only where it is implied (in the direction of the field before it)."""
    implied = len(order) > 1 and order[-1] == ("id", order[-2][1])
    keys = order[:-1] if implied else order
    return ",".join(("-" if descending else "") + name for name, descending in keys)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page by key starts: after (or before) the row with these sort values."""

    direction: Literal["after", "before"]
    values: tuple[Any, ...]


@dataclass(slots=True, kw_only=True)
class ListQuery:
    """One list request: filters (query parameter -> value), order, and where the page starts:
    a `position`, an `offset`, or the start; `limit` rows (the route's page size). `owner_scope`
    holds the equalities an auth rule adds (its `owner_id`): the rows the requester may see."""

    limit: int
    filters: dict[str, Any] = field(default_factory=dict)
    order: Order = (("id", False),)
    position: Position | None = None
    offset: int = 0
    owner_scope: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Page:
    """One page's rows; whether rows exist past each end (for `Link` headers); and its first
    and last rows as read, with where their sort values are (`keys`): what cursors start from,
    taken only for the pages whose links carry cursors."""

    rows: list[Any]
    more_after: bool = False
    more_before: bool = False
    ends: tuple[Values, Values] | None = None
    keys: Sequence[int] = ()

    @property
    def first_key(self) -> tuple[Any, ...]:
        return () if self.ends is None else tuple(self.ends[0][index] for index in self.keys)

    @property
    def last_key(self) -> tuple[Any, ...]:
        return () if self.ends is None else tuple(self.ends[1][index] for index in self.keys)
