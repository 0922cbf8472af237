"""Heroes, items and users as JSON, without a model instance per row; and HTTP dates, for
`Last-Modified`.

Rows come from the database as values in a known order (`crud` selects the columns named by
`HeroPublic.model_fields`, `ITEM_VALUES`, `USER_VALUES`), and the columns' types already
guarantee what validating them into models would: so they are rendered here, with orjson, to the
bytes `HeroPublic`, `Item` and `User` themselves give (tests/test_rendering.py compares the two,
on every backend).

The renderers are generated once, at import, from the schema's fields (as `dataclasses` writes
an `__init__`): the code a field list written by hand would be, `{"name": row[0], ...}` per row,
so a field added to a schema is rendered with no edit here. A schema whose JSON that code
would not reproduce (aliases, serializers, types orjson writes otherwise) is refused at import.

Not PostgreSQL's own JSON: rendering a page there (`string_agg` of `to_json`) took ~75 us of
the server's CPU per page and gave the database ~240 us more (docs/performance.md).
"""

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from types import NoneType, UnionType
from typing import Annotated, Any, Final, TypeAlias, Union, get_args, get_origin

import orjson
from pydantic import BaseModel

from heroapi.crud import ITEM_VALUES, USER_VALUES
from heroapi.db import Values
from heroapi.models import HeroPublic, Item, User

# The types every driver gives back as the value pydantic writes, and orjson writes as pydantic
# does. Not bool (SQLite and MariaDB give 0 and 1), float, datetime, Decimal, ...: a field of
# those needs its own conversion here first.
_RENDERED_AS_GIVEN: Final = (str, int, NoneType)
# For a field holding a list of another schema: that schema, and the names of its values.
Nested: TypeAlias = Mapping[str, tuple[type[BaseModel], Sequence[str]]]


def _rendered_as_given(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _rendered_as_given(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return all(_rendered_as_given(kind) for kind in get_args(annotation))
    return annotation in _RENDERED_AS_GIVEN


def _renderable(annotation: Any, inner: tuple[type[BaseModel], Sequence[str]] | None) -> bool:
    if inner is not None:
        return get_origin(annotation) is list and get_args(annotation) == (inner[0],)
    return annotation is bool or _rendered_as_given(annotation)


def _problems(schema: type[BaseModel], columns: Sequence[str], nested: Nested) -> list[str]:
    """What in `schema` the generated code would not render as pydantic does."""
    problems = [
        f"{name}: {field!r}"
        for name, field in schema.model_fields.items()
        if name not in columns
        or field.alias is not None
        or field.serialization_alias is not None
        or field.exclude
        or not _renderable(field.annotation, nested.get(name))
    ]
    decorators = schema.__pydantic_decorators__
    if schema.model_computed_fields or decorators.field_serializers or decorators.model_serializers:
        problems.append("computed fields or serializers")
    for inner, inner_columns in nested.values():
        problems.extend(_problems(inner, inner_columns, {}))
    return problems


def _literal(schema: type[BaseModel], columns: Sequence[str], nested: Nested, row: str) -> str:
    """The source of a dict literal of `schema`'s fields, read from the values `row`."""
    entries = []
    for name, field in schema.model_fields.items():
        value = f"{row}[{list(columns).index(name)}]"
        if name in nested:
            inner, inner_columns = nested[name]
            each = f"{row}_{name}"
            value = f"[{_literal(inner, inner_columns, {}, each)} for {each} in {value}]"
        elif field.annotation is bool:  # SQLite and MariaDB give 0 and 1
            value = f"bool({value})"
        # Field names are Python identifiers (pydantic's), written as string literals by repr.
        entries.append(f"{name!r}: {value}")
    return "{" + ", ".join(entries) + "}"


def json_renderers(
    schema: type[BaseModel],
    columns: Sequence[str] | None = None,
    *,
    nested: Nested | None = None,
) -> tuple[Callable[[Values], bytes], Callable[[Iterable[Values]], bytes]]:
    """Two functions rendering values to the JSON `schema` would give: one object (values not
    among the schema's fields are left out), and a list of them.

    `columns` names the values in order (by default, the schema's fields); `nested`, for a field
    that holds a list of another schema (`User.items`), that schema and the names of its values.
    A `bool` field is written as one whatever the driver gave (SQLite and MariaDB give 0 and 1).

    Generated code: a page's dict per row written as a literal that indexes the row. A call per
    row would cost ~10% of a 100-row page, and unpacking an asyncpg Record goes through an
    iterator (100 rows: 47 -> 39 us; sqlite3's tuples cost the same either way).
    """
    columns = tuple(schema.model_fields) if columns is None else tuple(columns)
    nested = {} if nested is None else nested
    problems = _problems(schema, columns, nested)
    if problems:
        raise TypeError(f"{schema.__name__} cannot be rendered from its values: {problems}")
    literal = _literal(schema, columns, nested, "row")
    source = (
        f"def one(row):\n    return dumps({literal})\n"
        f"def page(rows):\n    return dumps([{literal} for row in rows])\n"
    )
    namespace: dict[str, Any] = {"dumps": orjson.dumps}
    exec(compile(source, f"<{schema.__name__} renderers>", "exec"), namespace)  # noqa: S102
    return namespace["one"], namespace["page"]


hero_json, heroes_json = json_renderers(HeroPublic)
hero_json.__doc__ = """One hero, as `HeroPublic.model_dump_json()` gives it (values past the public
ones, such as a single read's `last_modified`, are not part of the body)."""
heroes_json.__doc__ = """A list of heroes, as `list[HeroPublic]` gives it."""
item_json, items_json = json_renderers(Item, ITEM_VALUES)
item_json.__doc__ = """One item's values (`crud.ITEM_VALUES`), as `Item` renders it."""
items_json.__doc__ = """A list of items' values, as `list[Item]` renders it."""
user_json, users_json = json_renderers(User, USER_VALUES, nested={"items": (Item, ITEM_VALUES)})
user_json.__doc__ = """One user's values with its items' (`crud.USER_VALUES`), as `User` gives."""
users_json.__doc__ = """A list of users' values, as `list[User]` renders it."""


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
