"""When a row last changed, as single-resource reads return it: whole Unix seconds, computed by
the database in the same SELECT as the row (no second query), so the routes can send
`Last-Modified` without knowing how each backend stores its timestamps (text on SQLite,
`timestamptz` on PostgreSQL, `TIMESTAMP(6)` on MariaDB)."""

import sqlite3
from typing import Final

from sqlalchemy import BigInteger, ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class epoch_seconds(FunctionElement[int]):  # noqa: N801 (an SQL function, named as one)
    """A timestamp column's value in whole seconds since 1970 UTC, rounded down (what an HTTP
    date can say)."""

    type = BigInteger()
    inherit_cache = True


_EPOCH_SECONDS_SQL: Final = {
    # The stored text is UTC (models.utc_now); both drop the fraction. unixepoch() (SQLite
    # 3.38+) costs half what strftime does: 0.8 against 1.6 us a row, on a 1.7 us read.
    "sqlite": "unixepoch({})"
    if sqlite3.sqlite_version_info >= (3, 38)
    else "CAST(strftime('%s', {}) AS INTEGER)",
    "postgresql": "CAST(floor(extract(epoch FROM {})) AS BIGINT)",
    # UNIX_TIMESTAMP of a TIMESTAMP reads its stored UTC value, whatever the session time zone.
    "mysql": "FLOOR(UNIX_TIMESTAMP({}))",
}


@compiles(epoch_seconds)
def _epoch_seconds(element: epoch_seconds, compiler: SQLCompiler, **kw: object) -> str:
    (column,) = element.clauses
    return _EPOCH_SECONDS_SQL[compiler.dialect.name].format(compiler.process(column, **kw))


def last_modified(updated_at: ColumnElement[object]) -> ColumnElement[int]:
    """`updated_at` as a result column named `last_modified`."""
    return epoch_seconds(updated_at).label("last_modified")
