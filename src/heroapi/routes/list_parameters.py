"""A list endpoint's query parameters, from its `Listing`: each filter, `order`, `cursor` and the
`Prefer` header, typed, so that FastAPI validates them and the OpenAPI document declares each
one (`with_list_parameters`). `routes/lists.py` reads the values FastAPI gives."""

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

from fastapi import Header, Query
from pydantic import AfterValidator
from sqlalchemy import Integer

from heroapi.crud.listing import Filter, Kind, Listing, Op
from heroapi.cursors import MAX_CURSOR_LENGTH
from heroapi.models import ID_MAX, storable_text

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
