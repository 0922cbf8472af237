"""Heroes as JSON, without a `HeroPublic` instance per row; and HTTP dates, for `Last-Modified`.

Rows come from the database as values in `HeroPublic`'s field order (name, age, id), and the
columns' types already guarantee what validating them into models would: so they are rendered
here, with orjson, to the bytes `HeroPublic` itself gives (tests/test_rendering.py compares the
two, on every backend).

Not PostgreSQL's own JSON: rendering a page there (`string_agg` of `to_json`) took ~75 us of
the server's CPU per page and gave the database ~240 us more (docs/performance.md).
"""

import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

import orjson

from heroapi.db import Values


def hero_json(values: Values) -> bytes:
    """One hero, as `HeroPublic.model_dump_json()` gives it (values past the public ones, such as
    a single read's `last_modified`, are not part of the body)."""
    return orjson.dumps({"name": values[0], "age": values[1], "id": values[2]})


def heroes_json(rows: Iterable[Values]) -> bytes:
    """A list of heroes, as `list[HeroPublic]` gives it."""
    # hero_json's dict, written out: a call per row would cost ~10% of a 100-row page. Indexed,
    # not unpacked: unpacking an asyncpg Record goes through an iterator (100 rows: 47 -> 39 us;
    # tuples from sqlite3 cost the same either way).
    return orjson.dumps([{"name": row[0], "age": row[1], "id": row[2]} for row in rows])


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
