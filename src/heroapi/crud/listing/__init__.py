"""Lists that filter, sort, count and page by key: declared once per resource.

A `Listing` names a table's fields, what each can be filtered by (`Op`) and whether it can be
sorted on, and how it reads a page. Everything else follows from that one declaration: the SQL
here, one way to fetch a page of any list (`fetch_page`), and the query parameters, their
OpenAPI (`routes/list_parameters.py`) and their reading (`routes/lists.py`).

Semantics, the same on every backend:
- Text compares by Unicode code point (binary collation: `models.code_point_text`), so a
  prefix is a range (`name >= 'Sp' AND name < 'Sq'`) that an index serves.
- An order is total: `id` ends it, in the direction of the field before it.
- NULL sorts before every value in ascending order, after every value in descending order
  (SQLite's and MariaDB's own rule; PostgreSQL is told so: `models.nulls_low`).
- A page by key (`Position`) holds the rows strictly after (or before) a row's sort values:
  rows inserted or deleted elsewhere never shift it, unlike an offset.
- A deep page by offset starts from where an earlier one started, while nothing is written
  (`anchors.py`), or, in the id order, at the id at its offset (`pages.py`): the same for
  every list, whatever its filters.

Statements are built per shape (which filters, which order, which kind of page), compiled once
per database and kept in a bounded cache (`Database.compile_for`): a client choosing among
thousands of combinations costs memory for the recent ones only.
"""

from heroapi.crud.listing.anchors import fetch_page
from heroapi.crud.listing.counts import ESTIMATE_EXACT_UP_TO, Count, count
from heroapi.crud.listing.declaration import (
    Field,
    Filter,
    Kind,
    ListError,
    Listing,
    ListQuery,
    Op,
    Order,
    Page,
    Position,
    Reads,
    order_text,
    parse_order,
    timestamps,
)
from heroapi.crud.listing.pages import (
    compiled_page,
    key_indexes,
    page_of,
    page_params,
    page_statement,
    read_rows,
    statement_shape,
)
from heroapi.crud.listing.values import key_from_json, key_to_json, moment_param, prefix_end

__all__ = [
    "ESTIMATE_EXACT_UP_TO",
    "Count",
    "Field",
    "Filter",
    "Kind",
    "ListError",
    "ListQuery",
    "Listing",
    "Op",
    "Order",
    "Page",
    "Position",
    "Reads",
    "compiled_page",
    "count",
    "fetch_page",
    "key_from_json",
    "key_indexes",
    "key_to_json",
    "moment_param",
    "order_text",
    "page_of",
    "page_params",
    "page_statement",
    "parse_order",
    "prefix_end",
    "read_rows",
    "statement_shape",
    "timestamps",
]
