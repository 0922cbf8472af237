"""What logging in keeps in the database: the stored signing key, throttling counters and
logins (sessions) with their refresh tokens. Kept there, not in a process, so every worker and
replica agrees with no other server."""

import enum
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Insert, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from heroapi.db import Database, IntegrityViolation
from heroapi.models import (
    app_secrets_table,
    rate_limits_table,
    sessions_table,
    users_table,
)
from heroapi.security import (
    new_refresh_token,
    new_session_id,
    refresh_token_hash,
    refresh_token_session,
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


async def read_hits(*, database: Database, key: str) -> Hits | None:
    """`key`'s count as the database has it now (None: no count, or it was cleared), read
    where it is written (never a replica behind it)."""
    async with database.transaction() as connection:
        row = await connection.fetch_one(_SELECT_HITS, {"key": key})
    return None if row is None else Hits(row["hits"], row["reset_at"])


async def take_back_hit(*, database: Database, key: str) -> None:
    """Undo one hit (a login that succeeded was counted before its password was checked)."""
    async with database.transaction() as connection:
        await connection.execute(_TAKE_BACK_HIT, {"key": key})


async def clear_hits(*, database: Database, key: str) -> None:
    async with database.transaction() as connection:
        await connection.execute(_CLEAR_HITS, {"key": key})


# -------------------------------------------------------------------------------- sessions

_SESSION_COLUMNS = (
    sessions_table.c.id,
    sessions_table.c.user_id,
    sessions_table.c.expires_at,
    sessions_table.c.ends_at,
    sessions_table.c.refreshes,
    sessions_table.c.window_ends_at,
    (sessions_table.c.security_stamp == users_table.c.security_stamp).label("stamp_matches"),
    users_table.c.is_active,
    users_table.c.security_stamp,
)
_SELECT_SESSION = (
    select(*_SESSION_COLUMNS)
    .select_from(sessions_table.join(users_table, sessions_table.c.user_id == users_table.c.id))
    .where(sessions_table.c.token_hash == bindparam("token_hash"))
)
_INSERT_SESSION = insert(sessions_table).values(
    id=bindparam("id"),
    user_id=bindparam("user_id"),
    security_stamp=bindparam("security_stamp"),
    token_hash=bindparam("token_hash"),
    expires_at=bindparam("expires_at"),
    ends_at=bindparam("ends_at"),
    refreshes=0,
    window_ends_at=0,
)
# A compare-and-set on the current token: of two requests presenting it at once, one wins.
_ROTATE = (
    update(sessions_table)
    .where(
        sessions_table.c.id == bindparam("id"),
        sessions_table.c.token_hash == bindparam("token_hash"),
    )
    .values(
        token_hash=bindparam("successor_hash"),
        expires_at=bindparam("expires_at"),
        refreshes=bindparam("refreshes"),
        window_ends_at=bindparam("window_ends_at"),
    )
)
_END_SESSION = delete(sessions_table).where(sessions_table.c.id == bindparam("id"))
# Logging out: by the current token, or by any token of the login (a spent one too).
_LOG_OUT = delete(sessions_table).where(
    or_(
        sessions_table.c.token_hash == bindparam("token_hash"),
        sessions_table.c.id == bindparam("id"),
    )
)
_DELETE_EXPIRED_SESSIONS = delete(sessions_table).where(
    sessions_table.c.expires_at <= bindparam("now")
)


class Refresh(enum.Enum):
    """What presenting a refresh token did."""

    ROTATED = "rotated"  # spent; its successor is stored
    UNKNOWN = "unknown"  # no such token
    INVALID = "invalid"  # expired, or the account changed (password, role, deactivated)
    REUSED = "reused"  # a spent token of a login: the login is ended
    THROTTLED = "throttled"  # the login refreshed too often: nothing changed


@dataclass(frozen=True)
class RefreshOutcome:
    result: Refresh
    user_id: int | None = None
    security_stamp: str | None = None
    refresh_token: str | None = None  # ROTATED: the successor
    # THROTTLED: the login's refreshes so far, and when its window ends (Unix seconds).
    hits: Hits | None = None


@dataclass(frozen=True)
class RefreshRate:
    """At most `quota` refreshes per login in a window of `window` seconds."""

    quota: int
    window: int


async def start_session(
    *,
    database: Database,
    user_id: int,
    security_stamp: str,
    expires_at: int,
    ends_at: int,
) -> str:
    """Store a new login; its first refresh token, valid until `expires_at` (at the latest
    `ends_at`, when the login ends)."""
    session_id = new_session_id()
    token, token_hash = new_refresh_token(session_id)
    values = {
        "id": session_id,
        "user_id": user_id,
        "security_stamp": security_stamp,
        "token_hash": token_hash,
        "expires_at": min(expires_at, ends_at),
        "ends_at": ends_at,
    }
    async with database.transaction() as connection:
        await connection.execute(_INSERT_SESSION, values)
    return token


async def rotate_refresh_token(
    *, database: Database, token: str, now: int, expires_at: int, rate: RefreshRate
) -> RefreshOutcome:
    """Spend the refresh token `token` and store its successor (valid until `expires_at`, at
    the latest its login's end), in one transaction.

    A token that is not its login's current one but names it (`refresh_token_session`) was
    spent already, and is presented again because it was copied: the login ends. So does a
    login past its end or whose account changed. A login past its refresh rate is left as it is
    (THROTTLED): its token still works once the window has passed."""
    token_hash = refresh_token_hash(token)
    async with database.transaction() as connection:
        row = await connection.fetch_one(_SELECT_SESSION, {"token_hash": token_hash})
        if row is None:
            session_id = refresh_token_session(token)
            if session_id is not None:
                ended = await connection.execute(_END_SESSION, {"id": session_id})
                if ended.rowcount:
                    return RefreshOutcome(Refresh.REUSED)
            return RefreshOutcome(Refresh.UNKNOWN)
        session = {"id": row["id"]}
        if row["expires_at"] <= now or not row["stamp_matches"] or not row["is_active"]:
            await connection.execute(_END_SESSION, session)
            return RefreshOutcome(Refresh.INVALID)
        window_open = row["window_ends_at"] > now
        if window_open and row["refreshes"] >= rate.quota:
            hits = Hits(row["refreshes"] + 1, row["window_ends_at"])
            return RefreshOutcome(Refresh.THROTTLED, hits=hits)
        successor, successor_hash = new_refresh_token(row["id"])
        rotation = {
            **session,
            "token_hash": token_hash,
            "successor_hash": successor_hash,
            "expires_at": min(expires_at, row["ends_at"]),
            "refreshes": row["refreshes"] + 1 if window_open else 1,
            "window_ends_at": row["window_ends_at"] if window_open else now + rate.window,
        }
        rotated = await connection.execute(_ROTATE, rotation)
        if rotated.rowcount == 0:  # spent by a concurrent request just now
            await connection.execute(_END_SESSION, session)
            return RefreshOutcome(Refresh.REUSED)
    return RefreshOutcome(Refresh.ROTATED, row["user_id"], row["security_stamp"], successor)


async def end_session(*, database: Database, token: str) -> bool:
    """End the login of the refresh token `token` (logging out): its current one, or a spent
    one that names it. False if there is no such login."""
    values = {"token_hash": refresh_token_hash(token), "id": refresh_token_session(token)}
    async with database.transaction() as connection:
        ended = await connection.execute(_LOG_OUT, values)
    return bool(ended.rowcount)


async def delete_expired(*, database: Database, now: int) -> None:
    """Forget throttling windows that have ended and logins whose refresh token has expired."""
    async with database.transaction() as connection:
        await connection.execute(_DELETE_EXPIRED_LIMITS, {"now": now})
        await connection.execute(_DELETE_EXPIRED_SESSIONS, {"now": now})
