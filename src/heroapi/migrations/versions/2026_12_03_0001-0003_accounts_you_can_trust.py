"""accounts you can trust: ids never reused, security stamps, exact email keys, the stored
signing key, throttling counters and refresh tokens

Revision ID: 0003
Revises: 0002
Created: 2026-12-03
"""

import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EXACT_KEY = sa.String(length=254).with_variant(mysql.VARBINARY(length=1016), "mysql")


# A row inserted without a stamp (by hand, a bulk load) gets a random one from the database.
RANDOM_STAMP = {
    "sqlite": "(lower(hex(randomblob(16))))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
    "mysql": "(replace(uuid(), '-', ''))",
}


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _alter(table: str, *, autoincrement: bool | None = None) -> Any:
    """Alembic's batch context for `table`; on SQLite with `autoincrement` set, a copy of the
    table with or without AUTOINCREMENT, which SQLite keeps in the table's definition (the other
    backends never reuse ids already)."""
    if autoincrement is None or not _is_sqlite():
        return op.batch_alter_table(table)
    return op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    )


def _give_every_user_a_stamp() -> None:
    connection = op.get_bind()
    users = sa.table("users", sa.column("id"), sa.column("security_stamp"))
    ids = connection.execute(sa.select(users.c.id)).scalars().all()
    for user_id in ids:
        connection.execute(
            users.update().where(users.c.id == user_id).values(security_stamp=secrets.token_hex(16))
        )


def upgrade() -> None:
    sqlite = _is_sqlite()
    op.add_column("users", sa.Column("security_stamp", sa.String(length=32), nullable=True))
    # Every token issued before this migration named an account by id alone: none survives.
    _give_every_user_a_stamp()
    with _alter("users", autoincrement=True) as batch_op:
        batch_op.alter_column(
            "security_stamp",
            existing_type=sa.String(length=32),
            nullable=False,
            server_default=sa.text(RANDOM_STAMP[op.get_bind().dialect.name]),
        )
        batch_op.drop_column("token_generation")
        if not sqlite:
            batch_op.alter_column(
                "email_key", existing_type=sa.String(length=254), type_=EXACT_KEY, nullable=False
            )
    for table in ("hero", "items"):
        with _alter(table, autoincrement=True):
            pass

    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", EXACT_KEY, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("reset_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_rate_limits_reset_at"), "rate_limits", ["reset_at"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("security_stamp", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        sqlite_autoincrement=True,
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_refresh_tokens_family"), "refresh_tokens", ["family"])
    op.create_index(op.f("ix_refresh_tokens_user_id"), "refresh_tokens", ["user_id"])
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.drop_table("rate_limits")
    op.drop_table("app_secrets")
    sqlite = _is_sqlite()
    for table in ("hero", "items"):
        with _alter(table, autoincrement=False):
            pass
    with _alter("users", autoincrement=False) as batch_op:
        batch_op.add_column(
            sa.Column("token_generation", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.drop_column("security_stamp")
        if not sqlite:
            batch_op.alter_column(
                "email_key", existing_type=EXACT_KEY, type_=sa.String(length=254), nullable=False
            )
