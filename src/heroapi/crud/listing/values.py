"""Values as each backend compares them: a prefix's range, a moment, a cursor's sort values."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from heroapi.crud.listing.declaration import Kind, Op


def prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with `prefix`, in code point order (so
    `col >= prefix AND col < prefix_end(prefix)` is `col` starts with `prefix`); None if there
    is none (the prefix is all U+10FFFF)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates are not text: the next character is U+E000
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


_SQLITE_TIME: Final = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")
_MILLISECOND: Final = timedelta(milliseconds=1)


def _sqlite_time(moment: datetime, *, round_up: bool) -> str:
    """A moment as SQLite's timestamps are stored (UTC text, milliseconds; models.utc_now).

    Stored values are whole milliseconds: `stored > t` is `stored > floor(t)`, and
    `stored < t` is `stored < ceil(t)`. The text compares as the time only with a four-digit
    year (`isoformat` pads it; `strftime("%Y")` does not, before the year 1000)."""
    moment = moment.astimezone(UTC)
    whole = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if round_up and whole != moment:
        whole += _MILLISECOND
    return whole.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")


def moment_param(backend: str, moment: datetime, op: Op) -> Any:
    """A filter's moment as the backend compares its timestamps (naive values are UTC).

    OverflowError if it is no moment of the years 1 to 9999 in UTC (no backend's either)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # In UTC here, for every backend: a moment that has none is refused as the parameter's
    # (a driver converting it would fail later, as a database error).
    moment = moment.astimezone(UTC)
    if backend == "sqlite":
        return _sqlite_time(moment, round_up=op is Op.BEFORE)
    if backend == "mysql":  # sessions run in UTC (db/mysql.py); TIMESTAMP takes naive values
        return moment.replace(tzinfo=None)
    return moment


def key_to_json(value: Any) -> Any:
    """A sort value as a cursor carries it."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def key_from_json(backend: str, kind: Kind, value: Any) -> Any:
    """A cursor's sort value as the backend gives and compares it; ValueError if it cannot be."""
    if value is None:
        return None
    expected = {Kind.INT: int, Kind.TEXT: str, Kind.BOOL: bool, Kind.TIME: str}[kind]
    if type(value) is not expected:
        raise ValueError(f"a {kind.value} sort value, got {value!r}")
    if isinstance(value, str) and kind is Kind.TIME:
        if backend == "sqlite":
            if not _SQLITE_TIME.fullmatch(value):
                raise ValueError(f"a stored time, got {value!r}")
            return value
        return datetime.fromisoformat(value)
    return value
