"""What logging in keeps in the database: the stored signing key, throttling counters and
refresh tokens. Kept there, not in a process, so every worker and replica agrees with no other
server."""

import enum
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Insert, bindparam, case, delete, false, insert, select, true, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from heroapi.db import Database, IntegrityViolation
from heroapi.models import (
    app_secrets_table,
    rate_limits_table,
    refresh_tokens_table,
    users_table,
)

SIGNING_KEY: Final = "token-signing-key"

# ---------------------------------------------------------------------------- signing key

_SELECT_SECRET = select(app_secrets_table.c.value).where(
    app_secrets_table.c.name == bindparam("name")
)
_INSERT_SECRET = insert(app_secrets_table).values(name=bindparam("name"), value=bindparam("value"))


async def stored_secret(*, database: Database, name: str, candidate: str) -> str:
    """The secret stored under `name`; the first caller stores `candidate`, and every later one
    (another worker, replica or restart) gets that same value back."""
    row = await database.fetch_one(_SELECT_SECRET, {"name": name})
    if row is None:
        try:
            async with database.transaction() as connection:
                await connection.execute(_INSERT_SECRET, {"name": name, "value": candidate})
        except IntegrityViolation:
            pass  # another process stored its own first: read it
        row = await database.fetch_one(_SELECT_SECRET, {"name": name})
    assert row is not None
    value: str = row["value"]
    return value


# ------------------------------------------------------------------------------ throttling

_LIMIT_KEY = rate_limits_table.c.key == bindparam("key")
_EXPIRED = rate_limits_table.c.reset_at <= bindparam("now")
# One atomic upsert per backend: a new key starts at 1, a key whose window has ended starts a
# new window at 1, any other adds one. (An UPDATE, then an INSERT where it found nothing, let
# two first attempts deadlock on InnoDB's gap locks.)
_FIRST_HIT = {"key": bindparam("key"), "hits": 1, "reset_at": bindparam("new_reset_at")}
_NEXT_HITS = case((_EXPIRED, 1), else_=rate_limits_table.c.hits + 1)
_NEXT_RESET_AT = case((_EXPIRED, bindparam("new_reset_at")), else_=rate_limits_table.c.reset_at)


def _count_hit_statement(dialect: str) -> Insert:
    if dialect == "mysql":
        # MySQL assigns left to right, each assignment seeing the ones before: `hits` comes
        # first, so both read the old `reset_at`.
        return (
            mysql.insert(rate_limits_table)
            .values(_FIRST_HIT)
            .on_duplicate_key_update([("hits", _NEXT_HITS), ("reset_at", _NEXT_RESET_AT)])
        )
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert_into(rate_limits_table)
        .values(_FIRST_HIT)
        .on_conflict_do_update(
            index_elements=[rate_limits_table.c.key],
            set_={"hits": _NEXT_HITS, "reset_at": _NEXT_RESET_AT},
        )
        .returning(rate_limits_table.c.hits, rate_limits_table.c.reset_at)
    )


_COUNT_HIT = {
    dialect: _count_hit_statement(dialect) for dialect in ("sqlite", "postgresql", "mysql")
}
_SELECT_HITS = select(rate_limits_table.c.hits, rate_limits_table.c.reset_at).where(_LIMIT_KEY)
_TAKE_BACK_HIT = (
    update(rate_limits_table)
    .where(_LIMIT_KEY, rate_limits_table.c.hits > 0)
    .values(hits=rate_limits_table.c.hits - 1)
)
_CLEAR_HITS = delete(rate_limits_table).where(_LIMIT_KEY)
_DELETE_EXPIRED_LIMITS = delete(rate_limits_table).where(_EXPIRED)


@dataclass(frozen=True)
class Hits:
    """A key's count in its current window, and when that window ends (Unix seconds)."""

    count: int
    reset_at: int


async def count_hit(*, database: Database, key: str, now: int, window: int) -> Hits:
    """Add one to `key`'s count (a new window of `window` seconds if the last one has ended),
    atomically: concurrent requests each see a different count."""
    params = {"key": key, "now": now, "new_reset_at": now + window}
    statement = _COUNT_HIT[database.dialect.name]
    async with database.transaction() as connection:
        if database.supports_returning:
            row = await connection.fetch_one(statement, params)
        else:  # MySQL: the row stays locked by this transaction until it is read back
            await connection.execute(statement, params)
            row = await connection.fetch_one(_SELECT_HITS, params)
    assert row is not None
    return Hits(row["hits"], row["reset_at"])


async def take_back_hit(*, database: Database, key: str) -> None:
    """Undo one hit (a login that succeeded was counted before its password was checked)."""
    async with database.transaction() as connection:
        await connection.execute(_TAKE_BACK_HIT, {"key": key})


async def clear_hits(*, database: Database, key: str) -> None:
    async with database.transaction() as connection:
        await connection.execute(_CLEAR_HITS, {"key": key})


# -------------------------------------------------------------------------- refresh tokens

_REFRESH_BY_HASH = refresh_tokens_table.c.token_hash == bindparam("token_hash")
_INSERT_REFRESH = insert(refresh_tokens_table).values(
    token_hash=bindparam("token_hash"),
    family=bindparam("family"),
    user_id=bindparam("user_id"),
    security_stamp=bindparam("security_stamp"),
    expires_at=bindparam("expires_at"),
)
_SELECT_REFRESH = (
    select(
        refresh_tokens_table.c.id,
        refresh_tokens_table.c.family,
        refresh_tokens_table.c.user_id,
        refresh_tokens_table.c.expires_at,
        refresh_tokens_table.c.used,
        refresh_tokens_table.c.revoked,
        (refresh_tokens_table.c.security_stamp == users_table.c.security_stamp).label(
            "stamp_matches"
        ),
        users_table.c.is_active,
        users_table.c.security_stamp,
    )
    .select_from(
        refresh_tokens_table.join(users_table, refresh_tokens_table.c.user_id == users_table.c.id)
    )
    .where(_REFRESH_BY_HASH)
)
# Spending a token is a compare-and-set: of two requests presenting it at once, one wins.
_SPEND_REFRESH = (
    update(refresh_tokens_table)
    .where(
        refresh_tokens_table.c.id == bindparam("id"),
        refresh_tokens_table.c.used == false(),
        refresh_tokens_table.c.revoked == false(),
    )
    .values(used=true())
)
_REVOKE_FAMILY = (
    update(refresh_tokens_table)
    .where(refresh_tokens_table.c.family == bindparam("family"))
    .values(revoked=true())
)
_SELECT_FAMILY = select(refresh_tokens_table.c.family).where(_REFRESH_BY_HASH)
_DELETE_EXPIRED_REFRESH = delete(refresh_tokens_table).where(
    refresh_tokens_table.c.expires_at <= bindparam("now")
)


class Refresh(enum.Enum):
    """What presenting a refresh token did."""

    ROTATED = "rotated"  # spent; its successor is stored
    UNKNOWN = "unknown"  # no such token
    INVALID = "invalid"  # expired, or the account changed (password, role, deactivated)
    REUSED = "reused"  # already spent or revoked: the whole family is revoked now


@dataclass(frozen=True)
class RefreshOutcome:
    result: Refresh
    user_id: int | None = None
    security_stamp: str | None = None


async def store_refresh_token(
    *,
    database: Database,
    token_hash: str,
    family: str,
    user_id: int,
    security_stamp: str,
    expires_at: int,
) -> None:
    values = {
        "token_hash": token_hash,
        "family": family,
        "user_id": user_id,
        "security_stamp": security_stamp,
        "expires_at": expires_at,
    }
    async with database.transaction() as connection:
        await connection.execute(_INSERT_REFRESH, values)


async def rotate_refresh_token(
    *, database: Database, token_hash: str, successor_hash: str, now: int, expires_at: int
) -> RefreshOutcome:
    """Spend the refresh token stored under `token_hash` and store its successor, in one
    transaction; a token presented a second time revokes its whole family instead."""
    async with database.transaction() as connection:
        row = await connection.fetch_one(_SELECT_REFRESH, {"token_hash": token_hash})
        if row is None:
            return RefreshOutcome(Refresh.UNKNOWN)
        family = {"family": row["family"]}
        if row["used"] or row["revoked"]:
            await connection.execute(_REVOKE_FAMILY, family)
            return RefreshOutcome(Refresh.REUSED)
        if row["expires_at"] <= now or not row["stamp_matches"] or not row["is_active"]:
            await connection.execute(_REVOKE_FAMILY, family)
            return RefreshOutcome(Refresh.INVALID)
        spent = await connection.execute(_SPEND_REFRESH, {"id": row["id"]})
        if spent.rowcount == 0:  # spent by a concurrent request just now
            await connection.execute(_REVOKE_FAMILY, family)
            return RefreshOutcome(Refresh.REUSED)
        successor = {
            "token_hash": successor_hash,
            "family": row["family"],
            "user_id": row["user_id"],
            "security_stamp": row["security_stamp"],
            "expires_at": expires_at,
        }
        await connection.execute(_INSERT_REFRESH, successor)
    return RefreshOutcome(Refresh.ROTATED, row["user_id"], row["security_stamp"])


async def revoke_refresh_family(*, database: Database, token_hash: str) -> bool:
    """Revoke the family of the refresh token stored under `token_hash` (logging out); False if
    there is no such token."""
    async with database.transaction() as connection:
        row = await connection.fetch_one(_SELECT_FAMILY, {"token_hash": token_hash})
        if row is None:
            return False
        await connection.execute(_REVOKE_FAMILY, {"family": row["family"]})
    return True


async def delete_expired(*, database: Database, now: int) -> None:
    """Forget throttling windows and refresh tokens that have ended."""
    async with database.transaction() as connection:
        await connection.execute(_DELETE_EXPIRED_LIMITS, {"now": now})
        await connection.execute(_DELETE_EXPIRED_REFRESH, {"now": now})
