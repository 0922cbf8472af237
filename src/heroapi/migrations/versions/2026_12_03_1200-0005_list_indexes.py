"""list indexes: the lists' text compared by code point, and a (field, id) index for each field
a list filters or sorts by

Revision ID: 0005
Revises: 0004
Created: 2026-12-03

`hero.name`, `users.email` and `items.title` compare as SQLite's default BINARY collation does,
on every backend: exactly (case, accents and trailing spaces count), in Unicode code point
order. PostgreSQL: the "C" collation. MariaDB: `utf8mb4_nopad_bin` (each MODIFY copies its
table). SQLite: nothing to change.

A list is ordered by its field, then `id` the same way: each field gets an index on (field, id),
which replaces the single-column ones (`ix_hero_name`, `ix_hero_age`, `ix_items_title`,
`ix_items_owner_id`). `hero.age` may be NULL, which the lists sort below every value, as SQLite
and MariaDB do; PostgreSQL's index says so (NULLS FIRST).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, length): the text the lists sort and filter by. All NOT NULL.
TEXT_COLUMNS = (("hero", "name", 255), ("users", "email", 254), ("items", "title", 255))
# Each (field, id) index, named by the models' convention: ix_<table>_<field>_id.
LIST_INDEXES = (
    ("hero", "name"),
    ("hero", "age"),
    ("hero", "created_at"),
    ("hero", "updated_at"),
    ("users", "email"),
    ("users", "is_active"),
    ("users", "created_at"),
    ("users", "updated_at"),
    ("items", "title"),
    ("items", "owner_id"),
    ("items", "created_at"),
    ("items", "updated_at"),
)
# The single-column indexes they replace; `ix_items_owner_id` is the one MariaDB's foreign key
# uses, and goes only once (items, owner_id, id) can take its place.
OLD_INDEXES = (("hero", "name"), ("hero", "age"), ("items", "title"))


def _code_point_text(dialect: str, length: int) -> sa.types.TypeEngine[str]:
    if dialect == "postgresql":
        return sa.String(length, collation="C")
    return mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_nopad_bin")


def _index_columns(dialect: str, table: str, field: str) -> list[str | sa.TextClause]:
    # PostgreSQL sorts NULL above every value unless told; the lists sort it below.
    if dialect == "postgresql" and (table, field) == ("hero", "age"):
        return [sa.text("age NULLS FIRST"), "id"]
    return [field, "id"]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # First, so that changing a column's collation does not rebuild an index about to go.
    for table, field in OLD_INDEXES:
        op.drop_index(f"ix_{table}_{field}", table_name=table)
    if dialect != "sqlite":
        for table, column, length in TEXT_COLUMNS:
            op.alter_column(
                table,
                column,
                existing_type=sa.String(length),
                type_=_code_point_text(dialect, length),
                existing_nullable=False,
            )
    for table, field in LIST_INDEXES:
        op.create_index(f"ix_{table}_{field}_id", table, _index_columns(dialect, table, field))
    op.drop_index("ix_items_owner_id", table_name="items")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_index("ix_items_owner_id", "items", ["owner_id"])
    for table, field in LIST_INDEXES:
        op.drop_index(f"ix_{table}_{field}_id", table_name=table)
    if dialect != "sqlite":
        # Back to the table's own collation (MariaDB) or the database's (PostgreSQL).
        for table, column, length in TEXT_COLUMNS:
            op.alter_column(
                table,
                column,
                existing_type=_code_point_text(dialect, length),
                type_=sa.String(length),
                existing_nullable=False,
            )
    for table, field in OLD_INDEXES:
        op.create_index(f"ix_{table}_{field}", table, [field])
