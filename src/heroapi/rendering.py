"""Heroes as JSON, without a `HeroPublic` instance per row.

Rows come from the database as values in `HeroPublic`'s field order (name, age, id), and the
columns' types already guarantee what validating them into models would: so they are rendered
here, with orjson, to the bytes `HeroPublic` itself gives (tests/test_rendering.py compares the
two). On PostgreSQL a page is rendered by the database instead (`crud.heroes`), to the same bytes.
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
    # hero_json's dict, written out: a call per row would cost ~10% of a 100-row page.
    return orjson.dumps([{"name": name, "age": age, "id": hero_id} for name, age, hero_id in rows])
