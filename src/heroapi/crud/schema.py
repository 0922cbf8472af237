"""What the database says about its own schema: the migration it is at."""

from sqlalchemy import text

from heroapi.db import Database

_SCHEMA_REVISION = text("SELECT version_num FROM alembic_version")


async def schema_revision(*, database: Database) -> str | None:
    """The Alembic revision the database's schema is at (None if it was never migrated)."""
    row = await database.fetch_one(_SCHEMA_REVISION, {})
    return None if row is None else str(row["version_num"])
