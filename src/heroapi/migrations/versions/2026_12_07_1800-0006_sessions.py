"""sessions: one row per login instead of one per refresh token

Revision ID: 0006
Revises: 0005
Created: 2026-12-07

`refresh_tokens` kept a row for every refresh token ever issued (each refresh added one) until
it expired. `sessions` keeps one row per login: its current token's hash, when that token
expires, when the login ends, and its refreshes in the current minute. A refresh token now
carries its login's id, which is how a spent one is still recognized.

Upgrading keeps every login that had a usable token (its current one, which goes on working);
such a login ends when that token would have expired. Downgrading keeps each login's current
token the same way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SESSIONS = sa.table(
    "sessions",
    sa.column("id"),
    sa.column("user_id"),
    sa.column("security_stamp"),
    sa.column("token_hash"),
    sa.column("expires_at"),
    sa.column("ends_at"),
    sa.column("refreshes"),
    sa.column("window_ends_at"),
)
REFRESH_TOKENS = sa.table(
    "refresh_tokens",
    sa.column("id"),
    sa.column("token_hash"),
    sa.column("family"),
    sa.column("user_id"),
    sa.column("security_stamp"),
    sa.column("expires_at"),
    sa.column("used", sa.Boolean()),
    sa.column("revoked", sa.Boolean()),
)


def _create_refresh_tokens() -> None:
    """The table as 0003 made it."""
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


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("security_stamp", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("ends_at", sa.BigInteger(), nullable=False),
        sa.Column("refreshes", sa.Integer(), nullable=False),
        sa.Column("window_ends_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    # A family's usable token is its one neither used nor revoked (the latest, to be sure).
    current = (
        sa.select(sa.func.max(REFRESH_TOKENS.c.id))
        .where(REFRESH_TOKENS.c.used == sa.false(), REFRESH_TOKENS.c.revoked == sa.false())
        .group_by(REFRESH_TOKENS.c.family)
    )
    op.execute(
        SESSIONS.insert().from_select(
            list(SESSIONS.c),
            sa.select(
                REFRESH_TOKENS.c.family,
                REFRESH_TOKENS.c.user_id,
                REFRESH_TOKENS.c.security_stamp,
                REFRESH_TOKENS.c.token_hash,
                REFRESH_TOKENS.c.expires_at,
                REFRESH_TOKENS.c.expires_at,
                sa.literal(0),
                sa.literal(0),
            ).where(REFRESH_TOKENS.c.id.in_(current)),
        )
    )
    op.drop_table("refresh_tokens")


def downgrade() -> None:
    _create_refresh_tokens()
    op.execute(
        REFRESH_TOKENS.insert().from_select(
            ["token_hash", "family", "user_id", "security_stamp", "expires_at"],
            sa.select(
                SESSIONS.c.token_hash,
                SESSIONS.c.id,
                SESSIONS.c.user_id,
                SESSIONS.c.security_stamp,
                SESSIONS.c.expires_at,
            ),
        )
    )
    op.drop_table("sessions")
