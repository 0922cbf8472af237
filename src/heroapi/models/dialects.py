"""What each backend writes its own way: column types (64-bit ids, exact text, timestamps) and
SQL constructs (NULLs low in an order, the database's clock, random stamps, a timestamp in Unix
seconds), each compiled for SQLite, PostgreSQL and MariaDB."""

import sqlite3
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.dialects.mysql import TIMESTAMP, VARBINARY, VARCHAR
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

from heroapi.models.limits import EMAIL_MAX_LENGTH, SECURITY_STAMP_LENGTH

# 64-bit ids; SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
IdType: Final = BigInteger().with_variant(Integer, "sqlite")
# MySQL/MariaDB compare strings by the column's collation: accent- and case-insensitive, with
# trailing spaces ignored. A key that must compare exactly is stored as bytes there (4 per
# character at most in UTF-8).
ExactText = String(EMAIL_MAX_LENGTH).with_variant(VARBINARY(4 * EMAIL_MAX_LENGTH), "mysql")


def code_point_text(length: int) -> String:
    """Text that every backend compares as SQLite's default BINARY collation does: exactly (case,
    accents and trailing spaces count) and in Unicode code point order ('Z' < 'a' < 'é'). A list
    sorted or filtered on such a column answers the same on all three, and a prefix is a plain
    range of its index (`col >= 'ab' AND col < 'ac'`). PostgreSQL's "C" collation compares the
    UTF-8 bytes, whose order is the code points'; MariaDB's `utf8mb4_nopad_bin` compares code
    points with no padding ('a' <> 'a ')."""
    return (
        String(length)
        .with_variant(String(length, collation="C"), "postgresql")
        .with_variant(VARCHAR(length, charset="utf8mb4", collation="utf8mb4_nopad_bin"), "mysql")
    )


class nulls_low(UnaryExpression[Any]):  # noqa: N801 (an SQL construct, named as one)
    """`column` in ascending (or `descending`) order, NULL below every value: first going up,
    last going down. SQLite and MariaDB sort NULL so already and have no NULLS clause in an
    index; PostgreSQL sorts it above every value, so there alone this adds NULLS FIRST (going
    up) or NULLS LAST (going down), and only to a column that may be NULL: on a NOT NULL one the
    clause would change nothing but keep a plain (column, id) index from serving the order.
    For an index column and an ORDER BY alike: an index on `nulls_low(age)` is read forwards
    for `nulls_low(age)` and backwards for `nulls_low(age, descending=True)`."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], *, descending: bool = False) -> None:
        # ASC/DESC as the modifier keeps it a plain column to Alembic's index comparison and to
        # MySQL's CREATE INDEX (which would make any other expression a functional index).
        super().__init__(column, modifier=operators.desc_op if descending else operators.asc_op)


@compiles(nulls_low)
def _nulls_low(element: nulls_low, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.element, **kw)
    if element.modifier is operators.desc_op:
        nulls, ordered = "NULLS LAST", f"{column} DESC"
    else:
        nulls, ordered = "NULLS FIRST", f"{column} ASC"
    if compiler.dialect.name != "postgresql" or not getattr(element.element, "nullable", True):
        return ordered
    return f"{ordered} {nulls}"


class random_stamp(FunctionElement[str]):  # noqa: N801 (an SQL function, named as one)
    """32 random hex characters made by the database: the security stamp of a row inserted
    without one (by hand, a restore, a bulk load). heroapi itself sets stamps from `secrets`."""

    type = String(SECURITY_STAMP_LENGTH)
    inherit_cache = True


# Each backend's own expression (in parentheses where the DDL needs them).
RANDOM_STAMP_SQL: Final = {
    "sqlite": "(lower(hex(randomblob(16))))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
    "mysql": "(replace(uuid(), '-', ''))",
}


@compiles(random_stamp)
def _random_stamp(element: random_stamp, compiler: SQLCompiler, **_: object) -> str:
    return RANDOM_STAMP_SQL[compiler.dialect.name]


class utc_now(FunctionElement[datetime]):  # noqa: N801 (an SQL function, named as one)
    """The database's clock, in UTC, as precisely as the backend keeps it: a row's `created_at`.

    SQLite has no time type: the text `YYYY-MM-DD HH:MM:SS.SSS` (milliseconds, its best).
    PostgreSQL: `timestamptz`, microseconds. MariaDB: `TIMESTAMP(6)`, microseconds, kept in UTC
    whatever the writing session's `time_zone` (a `DATETIME` would keep the writer's local time).
    """

    type = DateTime(timezone=True)
    inherit_cache = True


class utc_now_on_update(utc_now):  # noqa: N801
    """`utc_now`, and on MariaDB again at every UPDATE that changes the row (`ON UPDATE`, which
    MySQL keeps in the column's default). SQLite and PostgreSQL do it with a trigger of the
    migration's (0004), which the models cannot declare."""

    inherit_cache = True


UTC_NOW_SQL: Final = {
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
    "postgresql": "now()",
    "mysql": "CURRENT_TIMESTAMP(6)",
}


@compiles(utc_now)
def _utc_now(element: utc_now, compiler: SQLCompiler, **_: object) -> str:
    sql = UTC_NOW_SQL[compiler.dialect.name]
    if isinstance(element, utc_now_on_update) and compiler.dialect.name == "mysql":
        return f"{sql} ON UPDATE {sql}"
    return sql


# Microseconds on every backend that has them (SQLite stores the text utc_now gives it).
Timestamp: Final = DateTime(timezone=True).with_variant(TIMESTAMP(fsp=6), "mysql")


class epoch_seconds(FunctionElement[int]):  # noqa: N801 (an SQL function, named as one)
    """A timestamp column's value in whole seconds since 1970 UTC, rounded down (what an HTTP
    date can say)."""

    type = BigInteger()
    inherit_cache = True


_EPOCH_SECONDS_SQL: Final = {
    # The stored text is UTC (utc_now); both drop the fraction. unixepoch() (SQLite 3.38+)
    # costs half what strftime does: 0.8 against 1.6 us a row, on a 1.7 us read.
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
    """`updated_at` as a result column named `last_modified`: when the row last changed, as
    single-resource reads return it, computed by the database in the same SELECT as the row (no
    second query), so the routes can send `Last-Modified` without knowing how each backend
    stores its timestamps."""
    return epoch_seconds(updated_at).label("last_modified")
