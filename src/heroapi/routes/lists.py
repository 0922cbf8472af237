"""The HTTP side of lists: filters, `order=`, cursors, counts and `Link` headers.

All of it follows from a resource's `Listing` (crud/listing.py): `with_list_parameters` adds its
filters, `order` and `cursor` to a list endpoint's signature, so FastAPI validates them and the
OpenAPI document declares each one, typed; `list_query` turns them into a `ListQuery`, and
`list_headers` writes what a page says about itself.

Paging. A request with `offset` (`skip` on the older tutorial's lists) gets an offset page, as
in the tutorial, and `Link` headers to the offset pages around it. Any other request gets a page
by key: the first one, or the one its `cursor` names; its links carry cursors, which stay right
while rows are added and deleted, and cost the same at any depth. Under an `order=` other than
id, an offset past `HEROAPI_MAX_SORTED_OFFSET` is a 422 that points to cursors: such a page
sorts and steps over every row before it. Links are absolute URLs (`origin.py`).

Counts. `Prefer: count=exact` (or `estimated`) adds `X-Total-Count`, the rows matching the
filters, and `Preference-Applied` (RFC 7240); an unknown preference is ignored, as the RFC asks.
A count reads at most `HEROAPI_COUNT_LIMIT` rows: past it the answer has
`X-Total-Count-At-Least` instead, and no `Preference-Applied`; a count SQLite interrupts past
its time budget is left out the same way (the page is still answered). Every list answer says
`Vary: Prefer`. The answer's headers are written, and declared in the OpenAPI document, in
`list_headers.py`.

Only parameters that look like a filter of the list (`age_gt`, a misspelt operator) are refused;
others are ignored, as the tutorial's app ignores them.
"""

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import Header, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator
from sqlalchemy import Integer
from starlette.types import Scope

from heroapi.config import Settings
from heroapi.crud.listing import (
    Count,
    Filter,
    Kind,
    ListError,
    Listing,
    ListQuery,
    Op,
    Page,
    Position,
    count,
    key_from_json,
    moment_param,
    order_text,
    parse_order,
    prefix_end,
)
from heroapi.cursors import MAX_CURSOR_LENGTH, Cursors, InvalidCursor
from heroapi.db import Database
from heroapi.db.sqlite import StatementOverBudget
from heroapi.errors import RETRY_AFTER_SECONDS
from heroapi.models import ID_MAX, storable_text
from heroapi.routes.deps import cursors_in, database_in
from heroapi.routes.list_headers import (
    Headers,
    count_preference,
    list_headers,
    needs_cursors,
)

E = TypeVar("E", bound=Callable[..., Awaitable[Any]])

_DESCRIPTIONS: Final = {
    Op.EQ: "Only rows whose `{field}` is this.",
    Op.PREFIX: "Only rows whose `{field}` starts with this (case-sensitive).",
    Op.GTE: "Only rows whose `{field}` is at least this.",
    Op.LTE: "Only rows whose `{field}` is at most this.",
    Op.NULL: "`true`: only rows with no `{field}`; `false`: only rows with one.",
    Op.AFTER: "Only rows whose `{field}` is later than this (ISO 8601; without an offset, UTC).",
    Op.BEFORE: "Only rows whose `{field}` is earlier than this (ISO 8601; without an offset, UTC).",
}


def _annotation(item: Filter) -> Any:
    """The type and constraints of a filter's query parameter."""
    field = item.field
    description = (field.description if item.op is Op.EQ else "") or _DESCRIPTIONS[item.op].format(
        field=field.name
    )
    if item.op is Op.NULL:
        return Annotated[bool | None, Query(description=description)]
    if field.kind is Kind.INT:
        # What the column can hold: a value past it would be refused by the database.
        limit = 2**31 - 1 if type(field.column.type) is Integer else ID_MAX
        return Annotated[int | None, Query(ge=-limit - 1, le=limit, description=description)]
    if field.kind is Kind.TEXT:
        length = getattr(field.column.type, "length", None)
        return Annotated[
            str | None,
            Query(
                min_length=1 if item.op is Op.PREFIX else 0,
                max_length=length,
                description=description,
            ),
            AfterValidator(lambda value: None if value is None else storable_text(value)),
        ]
    if field.kind is Kind.BOOL:
        return Annotated[bool | None, Query(description=description)]
    return Annotated[datetime | None, Query(description=description)]


_PREFER: Final = Header(
    description="`count=exact` adds `X-Total-Count` (exact up to HEROAPI_COUNT_LIMIT rows; past "
    "it, `X-Total-Count-At-Least`), `count=estimated` an estimate (a list limited to your own "
    "rows is counted instead), `count=none` nothing (the default). RFC 7240.",
    examples=["count=exact"],
)


def _list_parameters(listing: Listing) -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter(name, keyword, default=None, annotation=_annotation(item))
        for name, item in listing.filters.items()
    ]
    sortable = ", ".join(f"`{name}`" for name in listing.sortable)
    order = Query(
        max_length=200,
        description=f"Sort by these fields, comma-separated, `-` for descending ({sortable}); "
        "ties are broken by `id`, in the direction of the last field. Text sorts by Unicode "
        "code point; a missing value sorts first ascending, last descending.",
        examples=["-" + listing.sortable[-1]],
    )
    cursor = Query(
        max_length=MAX_CURSOR_LENGTH,
        description="Where the page starts: a cursor from a previous answer's `Link` header "
        "(`rel=next` or `rel=prev`). Not with the offset parameter.",
    )
    parameters.append(
        inspect.Parameter("order", keyword, default=None, annotation=Annotated[str | None, order])
    )
    parameters.append(
        inspect.Parameter("cursor", keyword, default=None, annotation=Annotated[str | None, cursor])
    )
    # Read from the scope (`count_preference`: every `Prefer` header, not only the first); here
    # so that the OpenAPI document declares it.
    prefer = Annotated[str | None, _PREFER]
    parameters.append(inspect.Parameter("prefer", keyword, default=None, annotation=prefer))
    return parameters


def with_list_parameters(listing: Listing) -> Callable[[E], E]:
    """Add `listing`'s filters, `order`, `cursor` and the `Prefer` header to a list endpoint,
    which takes them as `**choices`: FastAPI then validates and documents each one."""

    def decorate(endpoint: E) -> E:
        signature = inspect.signature(endpoint)
        own = [
            parameter
            for parameter in signature.parameters.values()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *_list_parameters(listing)]
        )
        return endpoint

    return decorate


# ------------------------------------------------------------------------------------ requests


def _invalid(
    param: str, message: str, value: Any, kind: str = "value_error"
) -> RequestValidationError:
    """A 422 naming the query parameter, shaped as FastAPI's own."""
    return RequestValidationError(
        [{"type": kind, "loc": ("query", param), "msg": message, "input": value}]
    )


def _refuse_unknown_filters(
    listing: Listing, pairs: Iterable[tuple[str, str]], known: set[str]
) -> None:
    """422 for a parameter that reads as a filter the list does not have (`age_gt`, `title`
    where only `title_prefix` exists); anything else unknown is ignored, as the tutorial does."""
    for name, value in pairs:
        if name in known:
            continue
        for stem, filters in listing.stems.items():
            if name == stem or name.startswith(stem + "_"):
                takes = ", ".join(item.param for item in filters)
                raise _invalid(
                    name,
                    f"Unknown filter {name!r}: {stem} is filtered by {takes}",
                    value,
                    "extra_forbidden",
                )


def query_pairs(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)


def list_query(
    pairs: list[tuple[str, str]],
    listing: Listing,
    choices: dict[str, Any],
    *,
    offset_param: str,
    offset: int,
    limit: int,
    cursors: Cursors | None,
    backend: str,
) -> ListQuery | None:
    """The list request the validated parameters make; None if no row can match (an email
    filter no account can have)."""
    known = {*listing.filters, "order", "cursor", offset_param, "limit"}
    _refuse_unknown_filters(listing, pairs, known)
    query = ListQuery(offset=offset, limit=limit)
    for name, value in choices.items():
        if value is None or name in ("order", "cursor", "prefer"):
            continue
        item = listing.filters[name]
        if item.field.convert is not None:
            value = item.field.convert(value)
            if value is None:
                return None
        if item.op is Op.PREFIX:
            value = (value, prefix_end(value))
        elif item.field.kind is Kind.TIME:
            try:
                value = moment_param(backend, value, item.op)
            except OverflowError:
                message = "Input should be a moment of the years 1 to 9999 in UTC"
                raise _invalid(name, message, value.isoformat()) from None
        query.filters[name] = value
    order = choices.get("order")
    try:
        if order is not None:
            query.order = parse_order(listing, order)
    except ListError as error:
        raise _invalid(error.param, str(error), order) from None
    cursor = choices.get("cursor")
    if cursor is not None:
        if any(name == offset_param for name, _ in pairs):
            raise _invalid("cursor", f"Page by cursor or by {offset_param}, not both", cursor)
        assert cursors is not None  # read_list reads the key when a cursor comes
        query.position = _position(listing, query, cursor, cursors, backend, order is not None)
    return query


def _position(
    listing: Listing,
    query: ListQuery,
    cursor: str,
    cursors: Cursors,
    backend: str,
    order_given: bool,
) -> Position:
    try:
        made_order, direction, values = cursors.read(cursor, listing.name)
        order = parse_order(listing, made_order)
        if order_given and order != query.order:
            raise InvalidCursor(f"a cursor for order={made_order}, not this order")
        if direction not in ("after", "before") or len(values) != len(order):
            raise InvalidCursor("not a cursor of this list")
        keys = tuple(
            key_from_json(backend, listing.fields[name].kind, value)
            for (name, _), value in zip(order, values, strict=True)
        )
    except (InvalidCursor, ListError, ValueError, TypeError) as error:
        raise _invalid("cursor", f"Invalid cursor: {error}", cursor) from None
    query.order = order
    return Position(direction, keys)


# ------------------------------------------------------------------------------------- answers

Fetch = Callable[[Database, ListQuery], Awaitable[Page]]


async def read_list(
    scope: Scope,
    listing: Listing,
    choices: dict[str, Any],
    fetch: Fetch,
    *,
    offset_param: str,
    offset: int,
    limit: int,
    conditions: dict[str, Any] | None = None,
) -> tuple[Page, Headers]:
    """One page of a list for a request's validated parameters (`choices`: the filters, `order`
    and `cursor`), read by `fetch`, with the headers that go with it. `conditions` are
    equalities the route adds (an auth rule's owner)."""
    database = database_in(scope)
    cursors = None if choices.get("cursor") is None else await cursors_in(scope)
    pairs = query_pairs(scope)
    query = list_query(
        pairs,
        listing,
        choices,
        offset_param=offset_param,
        offset=offset,
        limit=limit,
        cursors=cursors,
        backend=database.url.backend,
    )
    kept = urlencode([pair for pair in pairs if pair[0] not in (offset_param, "cursor")], safe=",")
    by_offset = choices.get("cursor") is None and any(name == offset_param for name, _ in pairs)
    paging = (offset_param, kept, by_offset)
    if query is None:  # nothing can match
        return await _answer(scope, listing, ListQuery(offset=offset, limit=limit), None, paging)
    if by_offset:
        _check_sorted_offset(scope, query, offset_param)
    query.owner_scope.update(conditions or {})
    return await _answer(scope, listing, query, fetch, paging)


def _check_sorted_offset(scope: Scope, query: ListQuery, offset_param: str) -> None:
    """HEROAPI_MAX_SORTED_OFFSET: under an order other than id, an offset page sorts and steps
    over every row before it; a cursor page costs the same at any depth."""
    maximum = _settings(scope).max_sorted_offset
    if maximum is None or query.offset <= maximum or query.order[0][0] == "id":
        return
    raise RequestValidationError(
        [
            {
                "type": "less_than_equal",
                "loc": ("query", offset_param),
                "msg": f"Input should be less than or equal to {maximum} with "
                f"order={order_text(query.order)} (HEROAPI_MAX_SORTED_OFFSET): page deeper by "
                'cursor, following the `Link: rel="next"` of a page asked without '
                f"{offset_param}",
                "input": str(query.offset),
                "ctx": {"le": maximum},
            }
        ]
    )


def _settings(scope: Scope) -> Settings:
    settings: Settings = scope["app"].state.settings
    return settings


async def read_plain_list(
    scope: Scope,
    listing: Listing,
    fetch: Fetch,
    *,
    offset_param: str,
    offset: int | None,
    limit: int,
    cursor: str | None,
    kept: str,
) -> tuple[Page, Headers]:
    """`read_list` for a direct route's plain request: its query holds nothing but an offset
    (None: not given), a limit and a cursor, in plain characters, so it is read as it is."""
    query = ListQuery(offset=offset or 0, limit=limit)
    if cursor is not None:
        database = database_in(scope)
        cursors = await cursors_in(scope)
        query.position = _position(listing, query, cursor, cursors, database.url.backend, False)
    paging = (offset_param, kept, cursor is None and offset is not None)
    return await _answer(scope, listing, query, fetch, paging)


async def _answer(
    scope: Scope,
    listing: Listing,
    query: ListQuery,
    fetch: Fetch | None,
    paging: tuple[str, str, bool],
) -> tuple[Page, Headers]:
    """The page (none if `fetch` is None: nothing can match), its count if asked for, and the
    headers."""
    database = database_in(scope)
    mode = count_preference(scope)
    counted: Count | None = None
    if fetch is None:
        page, counted = Page([]), Count(0)
    else:
        try:
            page = await fetch(database, query)
        except StatementOverBudget:
            raise _over_budget() from None
        if mode == "exact" or mode == "estimated":
            limit = _settings(scope).count_limit
            # A count is an extra: past its time, the page is answered without it.
            with contextlib.suppress(StatementOverBudget):
                counted = await count(database, listing, query, mode, limit=limit)
    offset_param, kept, by_offset = paging
    headers = list_headers(
        scope,
        listing,
        query,
        page,
        offset_param=offset_param,
        kept=kept,
        by_offset=by_offset,
        cursors=await cursors_in(scope) if needs_cursors(query, page, by_offset) else None,
        total=None if mode is None else (mode, counted),
    )
    return page, headers


def _over_budget() -> HTTPException:
    """503 for a page SQLite gave up on past HEROAPI_SQLITE_STATEMENT_BUDGET."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "This list request takes too long to answer now: narrow it with filters, or page by "
        "cursor (the Link header)",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
