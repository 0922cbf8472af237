"""Heroes as JSON, without a `HeroPublic` instance per row; and HTTP dates, for `Last-Modified`.

Rows come from the database as values in `HeroPublic`'s field order (`crud` selects the columns
named by `HeroPublic.model_fields`), and the columns' types already guarantee what validating
them into models would: so they are rendered here, with orjson, to the bytes `HeroPublic` itself
gives (tests/test_rendering.py compares the two, on every backend).

The renderers are generated once, at import, from `HeroPublic`'s fields (as `dataclasses` writes
an `__init__`): the code a field list written by hand would be, `{"name": row[0], ...}` per row,
so a field added to `HeroPublic` is rendered with no edit here. A schema whose JSON that code
would not reproduce (aliases, serializers, types orjson writes otherwise) is refused at import.

Not PostgreSQL's own JSON: rendering a page there (`string_agg` of `to_json`) took ~75 us of
the server's CPU per page and gave the database ~240 us more (docs/performance.md).
"""

import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin

import orjson
from pydantic import BaseModel

from heroapi.db import Values
from heroapi.models import HeroPublic

# The types every driver gives back as the value pydantic writes, and orjson writes as pydantic
# does. Not bool (SQLite and MariaDB give 0 and 1), float, datetime, Decimal, ...: a field of
# those needs its own conversion here first.
_RENDERED_AS_GIVEN: Final = (str, int, NoneType)


def _rendered_as_given(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _rendered_as_given(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return all(_rendered_as_given(kind) for kind in get_args(annotation))
    return annotation in _RENDERED_AS_GIVEN


def json_renderers(
    schema: type[BaseModel],
) -> tuple[Callable[[Values], bytes], Callable[[Iterable[Values]], bytes]]:
    """Two functions rendering values in `schema`'s field order to the JSON `schema` would give:
    one object (values past the schema's are left out), and a list of them.

    Generated code: a page's dict per row written as a literal that indexes the row. A call per
    row would cost ~10% of a 100-row page, and unpacking an asyncpg Record goes through an
    iterator (100 rows: 47 -> 39 us; sqlite3's tuples cost the same either way).
    """
    problems = [
        f"{name}: {field!r}"
        for name, field in schema.model_fields.items()
        if not _rendered_as_given(field.annotation)
        or field.alias is not None
        or field.serialization_alias is not None
        or field.exclude
    ]
    decorators = schema.__pydantic_decorators__
    if schema.model_computed_fields or decorators.field_serializers or decorators.model_serializers:
        problems.append("computed fields or serializers")
    if problems:
        raise TypeError(f"{schema.__name__} cannot be rendered from its values: {problems}")
    # Field names are Python identifiers (pydantic's), written as string literals by repr.
    entries = ", ".join(f"{name!r}: row[{index}]" for index, name in enumerate(schema.model_fields))
    source = (
        f"def one(row):\n    return dumps({{{entries}}})\n"
        f"def page(rows):\n    return dumps([{{{entries}}} for row in rows])\n"
    )
    namespace: dict[str, Any] = {"dumps": orjson.dumps}
    exec(compile(source, f"<{schema.__name__} renderers>", "exec"), namespace)  # noqa: S102
    return namespace["one"], namespace["page"]


hero_json, heroes_json = json_renderers(HeroPublic)
hero_json.__doc__ = """One hero, as `HeroPublic.model_dump_json()` gives it (values past the public
ones, such as a single read's `last_modified`, are not part of the body)."""
heroes_json.__doc__ = """A list of heroes, as `list[HeroPublic]` gives it."""


_DAYS: Final = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS: Final = b" Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(b" ")


@lru_cache(maxsize=4096)
def http_date(seconds: int) -> bytes:
    """Unix seconds as an RFC 9110 HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`), in ASCII.

    Written out rather than `email.utils.formatdate(usegmt=True)`: that one takes a float and
    goes through a datetime, twice the cost on the `GET /heroes/{id}` hot path (2.3 against
    1.1 us). Cached: a hero read again and again has one date (0.06 us).
    """
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )
