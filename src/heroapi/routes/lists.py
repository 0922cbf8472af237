"""Where every list request goes: read once into a `ListRequest`, then answered by `read_page`.

A request is read by `validated_request` from the values FastAPI validated (the parameters
`list_parameters.py` declares from the resource's `Listing`), or, on a direct route's fast
path, by `plain_request` from a plain query string as it is. `read_page` fetches the page
(`crud.listing.fetch_page`, the same for every list), counts it if asked (`Prefer`), and
writes its headers (`list_headers.py`, which says what they say).

Paging. A request with `offset` (`skip` on the older tutorial's lists) gets an offset page, as
in the tutorial, and `Link` headers to the offset pages around it. Any other request gets a page
by key: the first one, or the one its `cursor` names; its links carry cursors, which stay right
while rows are added and deleted, and cost the same at any depth (a deep offset page, only
when read again or after another: `crud/listing/anchors.py`). A cursor and an offset together
are a 422. Under an `order=` other than id, an offset past `HEROAPI_MAX_SORTED_OFFSET`
is a 422 that points to cursors: such a page sorts and steps over every row before it. Links
are absolute URLs (`origin.py`).

Only parameters that look like a filter of the list (`age_gt`, a misspelt operator) are refused;
others are ignored, as the tutorial's app ignores them.
"""

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.types import Scope

from heroapi.crud.listing import (
    Count,
    Kind,
    ListError,
    Listing,
    ListQuery,
    Op,
    Page,
    Position,
    count,
    fetch_page,
    key_from_json,
    moment_param,
    order_text,
    parse_order,
    prefix_end,
)
from heroapi.cursors import InvalidCursor
from heroapi.db import Values
from heroapi.db.sqlite import StatementOverBudget
from heroapi.errors import RETRY_AFTER_SECONDS
from heroapi.models import ID_MAX
from heroapi.routes.deps import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    app_database,
    app_settings,
    cursors_in,
    offset_allowed,
)
from heroapi.routes.direct import Answer, plain_cursor, plain_query
from heroapi.routes.list_headers import Headers, count_preference, list_headers, needs_cursors


@dataclass(slots=True)
class ListRequest:
    """One list request, read: its `query`, and what its `Link` headers need of it.

    `kept` is the request's query string without its page (offset or cursor), encoded;
    `offset_given`, whether it names `offset_param`. `matches_nothing`: a filter no row can
    match (an email no account can have), answered with no query at all."""

    listing: Listing
    query: ListQuery
    offset_param: str
    kept: str
    offset_given: bool
    cursor: str | None
    matches_nothing: bool = False

    @property
    def by_offset(self) -> bool:
        """Whether the page is an offset page (else a page by key, linked by cursors)."""
        return self.offset_given and self.cursor is None


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
                message = f"Unknown filter {name!r}: {stem} is filtered by {takes}"
                raise _invalid(name, message, value, "extra_forbidden")


def _filters(listing: Listing, choices: dict[str, Any], backend: str) -> dict[str, Any] | None:
    """The filters among the validated parameters, as the list compares them; None if no row
    can match one (an email filter no account can have)."""
    filters: dict[str, Any] = {}
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
        filters[name] = value
    return filters


async def validated_request(
    scope: Scope,
    listing: Listing,
    choices: dict[str, Any],
    *,
    offset_param: str,
    offset: int,
    limit: int,
    owner_scope: dict[str, Any] | None = None,
) -> ListRequest:
    """The list request of a handler's validated parameters (`choices`: the filters, `order`
    and `cursor`); `owner_scope`, the equalities an auth rule adds (its `owner_id`)."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    known = {*listing.filters, "order", "cursor", offset_param, "limit"}
    _refuse_unknown_filters(listing, pairs, known)
    kept = urlencode([pair for pair in pairs if pair[0] not in (offset_param, "cursor")], safe=",")
    offset_given = any(name == offset_param for name, _ in pairs)
    cursor, order = choices.get("cursor"), choices.get("order")
    filters = _filters(listing, choices, app_database(scope).url.backend)
    query = ListQuery(
        filters=filters or {}, offset=offset, limit=limit, owner_scope=owner_scope or {}
    )
    request = ListRequest(listing, query, offset_param, kept, offset_given, cursor)
    if filters is None:
        request.matches_nothing = True
        return request
    if order is not None:
        try:
            query.order = parse_order(listing, order)
        except ListError as error:
            raise _invalid(error.param, str(error), order) from None
    await _start(scope, request, order_given=order is not None)
    if request.by_offset:
        _check_sorted_offset(scope, query, offset_param)
    return request


async def plain_request(
    scope: Scope,
    listing: Listing,
    *,
    offset_param: str,
    defaults: dict[str, int],
    maxima: dict[str, int],
) -> ListRequest | None:
    """The list request of a direct route's plain query, read as it is: nothing but an offset
    and a limit (over `defaults`, up to `maxima`) and a cursor, each once, in plain characters,
    and no `Prefer` count. None for any other, which FastAPI then reads."""
    query_string, cursor = plain_cursor(scope["query_string"])
    page = plain_query(query_string, defaults, maxima)
    if page is None or not offset_allowed(scope, page[offset_param]) or count_preference(scope):
        return None
    parts = query_string.split(b"&") if query_string else []
    kept = [part for part in parts if not part.startswith(offset_param.encode() + b"=")]
    query = ListQuery(offset=page[offset_param], limit=page["limit"])
    text = b"&".join(kept).decode("ascii")
    request = ListRequest(listing, query, offset_param, text, len(kept) < len(parts), cursor)
    await _start(scope, request, order_given=False)
    return request


async def _start(scope: Scope, request: ListRequest, *, order_given: bool) -> None:
    """Where the request's page starts: at its offset, or at the position its cursor names
    (in the cursor's order, which an `order` given must be). A cursor and an offset together
    are a 422."""
    cursor = request.cursor
    if cursor is None:
        return
    if request.offset_given:
        raise _invalid("cursor", f"Page by cursor or by {request.offset_param}, not both", cursor)
    cursors = await cursors_in(scope)
    backend = app_database(scope).url.backend
    listing, query = request.listing, request.query
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
    query.position = Position(direction, keys)


def _check_sorted_offset(scope: Scope, query: ListQuery, offset_param: str) -> None:
    """HEROAPI_MAX_SORTED_OFFSET: under an order other than id, an offset page sorts and steps
    over every row before it; a cursor page costs the same at any depth."""
    maximum = app_settings(scope).max_sorted_offset
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


# ------------------------------------------------------------------------------------- answers


async def read_page(scope: Scope, request: ListRequest) -> tuple[Page, Headers]:
    """The page a list request asks for (none when nothing can match), its count if asked for
    (`Prefer`), and the headers."""
    database = app_database(scope)
    listing, query = request.listing, request.query
    mode = count_preference(scope)
    counted: Count | None = None
    if request.matches_nothing:
        page, counted = Page([]), Count(0)
    else:
        try:
            page = await fetch_page(database, listing, query)
        except StatementOverBudget:
            raise _over_budget() from None
        if mode == "exact" or mode == "estimated":
            limit = app_settings(scope).count_limit
            # A count is an extra: past its time, the page is answered without it.
            with contextlib.suppress(StatementOverBudget):
                counted = await count(database, listing, query, mode, limit=limit)
    by_offset = request.by_offset
    headers = list_headers(
        scope,
        listing,
        query,
        page,
        offset_param=request.offset_param,
        kept=request.kept,
        by_offset=by_offset,
        cursors=await cursors_in(scope) if needs_cursors(query, page, by_offset) else None,
        total=None if mode is None else (mode, counted),
    )
    return page, headers


def page_response(body: bytes, headers: Headers) -> Response:
    """A handler's answer with a page: its JSON `body` and its headers (`read_page`)."""
    response = Response(body, media_type="application/json")
    response.raw_headers.extend(headers)
    return response


class FastList:
    """The fast answer of a list (`Endpoint.fast`): the 200 of a request with no query, or a
    plain offset (`offset_param`) and `limit` in range, or a `cursor` and a plain `limit` (the
    `next` and `prev` links of the id order); and no `Prefer`. Its rows are rendered by
    `render`, the same bytes as its handler's `page_response`. None for anything else, which the
    handler reads. `defaults` are the handler's own (tests/test_direct.py checks it)."""

    def __init__(
        self, listing: Listing, render: Callable[[list[Values]], bytes], *, offset_param: str
    ) -> None:
        self.listing = listing
        self.render = render
        self.offset_param = offset_param
        self.defaults = {offset_param: 0, "limit": DEFAULT_PAGE_SIZE}
        self.maxima = {offset_param: ID_MAX, "limit": MAX_PAGE_SIZE}

    async def __call__(self, scope: Scope) -> Answer | None:
        try:
            listed = await plain_request(
                scope,
                self.listing,
                offset_param=self.offset_param,
                defaults=self.defaults,
                maxima=self.maxima,
            )
        except RequestValidationError:  # a cursor with an offset, or not this list's: a 422
            return None
        if listed is None:
            return None
        page, headers = await read_page(scope, listed)
        return self.render(page.rows), headers


def _over_budget() -> HTTPException:
    """503 for a page SQLite gave up on past HEROAPI_SQLITE_STATEMENT_BUDGET."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "This list request takes too long to answer now: narrow it with filters, or page by "
        "cursor (the Link header)",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
