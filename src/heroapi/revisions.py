"""The latest migration's revision, read from the migration files without importing Alembic,
and whether a database is at it.

A server whose database is already at this revision starts without loading Alembic at all:
~13 MB of memory per process, and for `heroapi serve`, which asks `schema_at_head` before
anything else, no `heroapi db upgrade` child (a second Python start-up: ready in 0.63 s instead
of 1.26 s, scripts/startup_time.py). `tests/test_migrations.py` checks that Alembic finds the
same head.
"""

import re
from functools import cache
from pathlib import Path

from heroapi import crud
from heroapi.db import Database

VERSIONS = Path(__file__).with_name("migrations") / "versions"
# `revision: str = "0002"`, `down_revision: str | None = "0001"` (or None), as Alembic writes them.
_FIELD = re.compile(r'^(revision|down_revision)\b[^=\n]*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


@cache
def head_revision() -> str:
    """The revision no other migration builds on."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        for name, value in _FIELD.findall(path.read_text(encoding="utf-8")):
            if name == "revision":
                revisions.add(value)
            elif value:
                parents.add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


async def schema_at_head(database: Database) -> bool:
    """Whether the database's schema is at the latest migration (False if it was never migrated,
    or cannot be read: migrating is then the way to find out, or to say, what is wrong)."""
    try:
        return await crud.schema_revision(database=database) == head_revision()
    except Exception:  # no alembic_version table yet (each driver says so its own way)
        return False
