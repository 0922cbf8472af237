"""create the hero table

Revision ID: 0001
Revises:
Created: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hero",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("secret_name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hero")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_hero_name"), "hero", ["name"])
    op.create_index(op.f("ix_hero_age"), "hero", ["age"])


def downgrade() -> None:
    op.drop_index(op.f("ix_hero_age"), table_name="hero")
    op.drop_index(op.f("ix_hero_name"), table_name="hero")
    op.drop_table("hero")
