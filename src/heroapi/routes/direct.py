"""The fast path: a route's everyday request answered without FastAPI's per-request machinery.

After a route matches, FastAPI builds a `Request`, opens two exit stacks, solves the endpoint's
parameters and dependencies, calls it, and renders its `Response`: ~50 us of the ~130 us of
server CPU a `GET /heroes/{id}` took on SQLite, more than the database read and the JSON
together (docs/performance.md). A route registered with a `FastAnswer` (`Endpoint.fast`) is still
FastAPI's route, matched, documented and wrapped in the app's middleware like any other; only its
`handle` first asks the fast answer for the body of a 200 (`routing.Route`). A fast answer takes
only what it can read unambiguously (plain decimal numbers in range, the parameters it knows,
each once; the parsers below) and returns None for anything else, a miss included, which FastAPI
then handles as it always did: same validation, same 404 and 422 bodies, same error handlers.
tests/test_direct.py holds the two ways to the same bytes.
"""

from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

from fastapi import HTTPException, Response
from starlette.types import Scope

from heroapi.db import Database, Values
from heroapi.models import ID_MAX
from heroapi.rendering import http_date
from heroapi.routes.deps import app_database, in_id_range

# A 200's JSON body, and the headers it sends besides Content-Length and Content-Type.
Answer: TypeAlias = tuple[bytes, list[tuple[bytes, bytes]]]
# A GET's 200 read from the ASGI scope alone, or None to let FastAPI handle the request.
FastAnswer: TypeAlias = Callable[[Scope], Awaitable[Answer | None]]
# A single read: the row with an id, as values, or None.
ReadOne: TypeAlias = Callable[[Database, int], Awaitable[Values | None]]


def plain_int(text: str | bytes, maximum: int) -> int | None:
    """`text` as an int if it is plain decimal digits for a number in 0..`maximum` with no
    leading zero (what any parser reads the same way); None otherwise."""
    if not text.isdigit() or not text.isascii() or (text[:1] in ("0", b"0") and len(text) > 1):
        return None
    if len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def plain_query(
    query_string: bytes, defaults: dict[str, int], maxima: dict[str, int]
) -> dict[str, int] | None:
    """The query's integer parameters over `defaults`, if it holds only names of `maxima`, each
    at most once, with plain values in range (`plain_int`); None otherwise."""
    values = dict(defaults)
    if not query_string:
        return values
    seen: set[str] = set()
    for part in query_string.split(b"&"):
        name_bytes, equals, raw = part.partition(b"=")
        name = name_bytes.decode("latin-1")
        maximum = maxima.get(name)
        if maximum is None or not equals or name in seen:
            return None
        value = plain_int(raw, maximum)
        if value is None:
            return None
        seen.add(name)
        values[name] = value
    return values


_CURSOR_CHARACTERS: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


def plain_cursor(query_string: bytes) -> tuple[bytes, str | None]:
    """The query without its `cursor` parameter, and the cursor, if there is one, once, in
    base64url characters (nothing to decode); else the query as it is, and None."""
    if b"cursor=" not in query_string:
        return query_string, None
    parts = query_string.split(b"&")
    cursors = [part for part in parts if part.startswith(b"cursor=")]
    if len(cursors) != 1:
        return query_string, None
    value = cursors[0].removeprefix(b"cursor=")
    if not value or not _CURSOR_CHARACTERS.issuperset(value):
        return query_string, None
    return b"&".join(part for part in parts if part is not cursors[0]), value.decode("ascii")


# ------------------------------------------------------------------------------ single reads


def last_modified(seconds: int) -> list[tuple[bytes, bytes]]:
    """The `Last-Modified` header of a row that last changed at `seconds` (Unix time)."""
    return [(b"last-modified", http_date(seconds))]


def row_response(
    values: Values | None,
    render: Callable[[Values], bytes],
    not_found: Callable[[], HTTPException],
    *,
    modified_at: int | None = None,
) -> Response:
    """A handler's answer with one row: `render`ed, with its `Last-Modified` if the values hold
    it (at `modified_at`); `not_found()` raised for None."""
    if values is None:
        raise not_found()
    response = Response(render(values), media_type="application/json")
    if modified_at is not None:
        response.raw_headers.extend(last_modified(values[modified_at]))
    return response


def fast_read_one(
    param: str, read: ReadOne, render: Callable[[Values], bytes], *, modified_at: int
) -> FastAnswer:
    """The fast answer of a single read: the 200 of the row whose id the path's `param` holds in
    plain digits, as `render` writes it, with its `Last-Modified` (the values' `modified_at`),
    the same as `row_response` gives; None for anything else, a missing row included, which its
    handler answers (with the 404)."""

    async def answer(scope: Scope) -> Answer | None:
        key = plain_int(scope["path_params"][param], ID_MAX)
        if key is None or not in_id_range(key):
            return None
        values = await read(app_database(scope), key)
        return None if values is None else (render(values), last_modified(values[modified_at]))

    return answer
