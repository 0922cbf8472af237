"""What a list's answer says about itself, in headers: `Link` (RFC 8288), the count asked for
with `Prefer` (RFC 7240), `Vary: Prefer`; and `LIST_RESPONSES`, how the OpenAPI document
declares them (`routes/lists.py` reads the requests).

Counts. `Prefer: count=exact` (or `estimated`) adds `X-Total-Count`, the rows matching the
filters, and `Preference-Applied` (RFC 7240); an unknown preference is ignored, as the RFC asks.
A count reads at most `HEROAPI_COUNT_LIMIT` rows: past it the answer has
`X-Total-Count-At-Least` instead, and no `Preference-Applied`; a count SQLite interrupts past
its time budget is left out the same way (the page is still answered). Every list answer says
`Vary: Prefer`.
"""

from typing import Any, Final, Literal

from starlette.types import Scope

from heroapi.crud.listing import Count, Listing, ListQuery, Page, key_to_json, order_text
from heroapi.cursors import Cursors
from heroapi.routes.origin import request_url

Headers = list[tuple[bytes, bytes]]
CountMode = Literal["exact", "estimated", "none"]

COUNT_HEADER: Final = b"x-total-count"
AT_LEAST_HEADER: Final = b"x-total-count-at-least"
_COUNT_MODES: Final[dict[str, CountMode]] = {
    "exact": "exact",
    "estimated": "estimated",
    "none": "none",
}
_VARY: Final = (b"vary", b"Prefer")


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "schema": schema}


# What a list's 200 says about itself, for the OpenAPI document (`responses=` of a list route).
LIST_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "headers": {
            "Link": _header(
                'The pages around this one (RFC 8288), as absolute URLs: `rel="next"` when '
                'more rows follow, `rel="prev"` unless this is the first page.',
                {"type": "string"},
            ),
            "X-Total-Count": _header(
                "With `Prefer: count=exact` or `count=estimated`: the rows the filters match.",
                {"type": "integer", "minimum": 0},
            ),
            "X-Total-Count-At-Least": _header(
                "Instead of `X-Total-Count`, when the rows the filters match are more than "
                "HEROAPI_COUNT_LIMIT: at least this many.",
                {"type": "integer", "minimum": 1},
            ),
            "Preference-Applied": _header(
                "The count preference applied (RFC 7240): `count=exact`, `count=estimated` or "
                "`count=none`; absent when the count was not given in full.",
                {"type": "string"},
            ),
            "Vary": _header("`Prefer`: the count depends on it.", {"type": "string"}),
        }
    }
}


def count_preference(scope: Scope) -> CountMode | None:
    """The `count` preference of the request's `Prefer` headers (RFC 7240), if it is one we
    honour."""
    for name, value in scope["headers"]:
        if name != b"prefer":
            continue
        for preference in value.decode("latin-1").split(","):
            token, _, argument = preference.split(";")[0].partition("=")
            if token.strip().lower() == "count":
                mode = _COUNT_MODES.get(argument.strip().strip('"').lower())
                if mode is not None:
                    return mode
    return None


def list_headers(
    scope: Scope,
    listing: Listing,
    query: ListQuery,
    page: Page,
    *,
    offset_param: str,
    kept: str,
    by_offset: bool,
    cursors: Cursors | None,
    total: tuple[CountMode, Count | None] | None = None,
) -> Headers:
    """`Link` (RFC 8288: `next`, `prev`), `Vary: Prefer` and, when asked for, the count (None:
    not given: `count_headers`).

    `kept` is the request's query without its page (offset or cursor), encoded: the links add
    theirs (a cursor is base64url, an offset digits: nothing to escape). `cursors` is needed
    for cursor links only (`needs_cursors`)."""
    links: list[str] = []
    if query.limit > 0 and (page.more_after or page.more_before or query.offset > 0):
        start = f"<{request_url(scope)}?{kept}{'&' if kept else ''}"
        if by_offset:
            if page.more_after:
                following = query.offset + query.limit
                links.append(f'{start}{offset_param}={following}>; rel="next"')
            if query.offset > 0:
                previous = max(0, query.offset - query.limit)
                links.append(f'{start}{offset_param}={previous}>; rel="prev"')
        elif page.rows:
            order = order_text(query.order)
            ends: tuple[tuple[str, Literal["after", "before"], tuple[Any, ...], bool], ...] = (
                ("next", "after", page.last_key, page.more_after),
                ("prev", "before", page.first_key, page.more_before),
            )
            for relation, direction, key, wanted in ends:
                if wanted and cursors is not None:
                    values = [key_to_json(value) for value in key]
                    token = cursors.make(listing.name, order, direction, values)
                    links.append(f'{start}cursor={token}>; rel="{relation}"')
    headers: Headers = [_VARY]
    if links:
        headers.append((b"link", ", ".join(links).encode()))
    if total is not None:
        headers += count_headers(*total)
    return headers


def count_headers(mode: CountMode, counted: Count | None) -> Headers:
    """`X-Total-Count` and the preference applied; for a count past its bound,
    `X-Total-Count-At-Least` alone; nothing for a count that was not made (past its time)."""
    if mode == "none":
        return [(b"preference-applied", b"count=none")]
    if counted is None:
        return []
    if counted.at_least:
        return [(AT_LEAST_HEADER, str(counted.rows).encode())]
    applied = b"count=estimated" if counted.estimated else b"count=exact"
    return [(COUNT_HEADER, str(counted.rows).encode()), (b"preference-applied", applied)]


def needs_cursors(query: ListQuery, page: Page, by_offset: bool) -> bool:
    """Whether the page's links carry cursors (whose key may have to be read first: offset
    pages never read it, so they never write it either)."""
    return not by_offset and query.limit > 0 and (page.more_after or page.more_before)
