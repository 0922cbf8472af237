"""Heroes as JSON, without a `HeroPublic` instance per row.

Rows come from the database as values in `HeroPublic`'s field order (name, age, id), and the
columns' types already guarantee what validating them into models would: so they are rendered
here, with orjson, to the bytes `HeroPublic` itself gives (tests/test_rendering.py compares the
two, on every backend).

Not PostgreSQL's own JSON: rendering a page there (`string_agg` of `to_json`) took ~75 us of
the server's CPU per page and gave the database ~240 us more (docs/performance.md).
"""

from collections.abc import Iterable

import orjson

from heroapi.db import Values


def hero_json(values: Values) -> bytes:
    """One hero, as `HeroPublic.model_dump_json()` gives it."""
    name, age, hero_id = values
    return orjson.dumps({"name": name, "age": age, "id": hero_id})


def heroes_json(rows: Iterable[Values]) -> bytes:
    """A list of heroes, as `list[HeroPublic]` gives it."""
    # hero_json's dict, written out: a call per row would cost ~10% of a 100-row page. Indexed,
    # not unpacked: unpacking an asyncpg Record goes through an iterator (100 rows: 47 -> 39 us;
    # tuples from sqlite3 cost the same either way).
    return orjson.dumps([{"name": row[0], "age": row[1], "id": row[2]} for row in rows])
