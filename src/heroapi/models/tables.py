"""The tables (`hero`, `users`, `items`, as the tutorials name them, and heroapi's own), in
`metadata`, which Alembic compares with the migrations."""

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
    true,
)

from heroapi.models.dialects import (
    ExactText,
    IdType,
    Timestamp,
    code_point_text,
    nulls_low,
    random_stamp,
    utc_now,
    utc_now_on_update,
)
from heroapi.models.limits import (
    DESCRIPTION_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    HASH_MAX_LENGTH,
    NAME_MAX_LENGTH,
    SECURITY_STAMP_LENGTH,
    SESSION_ID_LENGTH,
)

# Constraint names Alembic can find again on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def row_timestamps() -> tuple[Column[Any], Column[Any]]:
    """`created_at` and `updated_at`, set by the database alone (whoever writes the row: heroapi,
    a script, an operator's SQL), so they can be trusted as the row's history: UTC, never from a
    client's or an app server's clock. Not part of any response body; single-resource reads send
    `updated_at` as `Last-Modified`."""
    return (
        Column("created_at", Timestamp, nullable=False, server_default=utc_now()),
        Column("updated_at", Timestamp, nullable=False, server_default=utc_now_on_update()),
    )


# No id is ever handed out twice, on any backend: PostgreSQL's sequences and InnoDB's counter
# never go back; SQLite needs AUTOINCREMENT (`sqlite_autoincrement=True` on each table with an
# id), without which it reuses the largest id once its row is deleted (a deleted account's id
# would go to the next one registered).
hero_table = Table(
    "hero",
    metadata,
    Column("id", IdType, primary_key=True),
    Column("name", code_point_text(NAME_MAX_LENGTH), nullable=False),
    Column("age", Integer, nullable=True),
    Column("secret_name", String(NAME_MAX_LENGTH), nullable=False),
    *row_timestamps(),
    # MySQL/MariaDB: 4-byte UTF-8 (emoji) and transactions, whatever the server's defaults.
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    sqlite_autoincrement=True,
)
# The lists' indexes. A list is ordered by the field it is sorted (or filtered) by, then by `id`
# in the same direction (ORDER BY age DESC, id DESC), so each such field has an index on
# (field, id): a page is a run of it, read forwards or backwards from where the filter, or the
# last row of the page before, puts its start. tests/test_list_plans.py checks each query.
Index(None, hero_table.c.name, hero_table.c.id)
Index(None, nulls_low(hero_table.c.age), hero_table.c.id)  # PostgreSQL: (age NULLS FIRST, id)
Index(None, hero_table.c.created_at, hero_table.c.id)
Index(None, hero_table.c.updated_at, hero_table.c.id)


users_table = Table(
    "users",
    metadata,
    Column("id", IdType, primary_key=True),
    # As the user typed it (domain normalized), for display.
    Column("email", code_point_text(EMAIL_MAX_LENGTH), nullable=False),
    # email_key(email): the database refuses a second account for the same address, whatever
    # its case, even when two requests race.
    Column("email_key", ExactText, nullable=False, unique=True),
    Column("hashed_password", String(HASH_MAX_LENGTH), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("is_superuser", Boolean, nullable=False, server_default=false()),
    # A random value of this account's, carried by its tokens and checked on every request: new
    # whenever the password, `is_active` or `is_superuser` changes, so every earlier token stops
    # working; and no other row (a new account given a reused id, a restored backup, a row
    # inserted by hand) can ever match a token that was not issued for it.
    Column(
        "security_stamp",
        String(SECURITY_STAMP_LENGTH),
        nullable=False,
        server_default=random_stamp(),
    ),
    *row_timestamps(),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    sqlite_autoincrement=True,
)
Index(None, users_table.c.email, users_table.c.id)
Index(None, users_table.c.is_active, users_table.c.id)
Index(None, users_table.c.created_at, users_table.c.id)
Index(None, users_table.c.updated_at, users_table.c.id)

items_table = Table(
    "items",
    metadata,
    Column("id", IdType, primary_key=True),
    Column("title", code_point_text(NAME_MAX_LENGTH), nullable=False),
    Column("description", String(DESCRIPTION_MAX_LENGTH), nullable=True),
    # Deleting a user deletes their items, in the database itself: never an orphan.
    Column("owner_id", IdType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    *row_timestamps(),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    sqlite_autoincrement=True,
)
Index(None, items_table.c.title, items_table.c.id)
# Also the index MariaDB needs for the foreign key, and a user's items found by the cascade.
Index(None, items_table.c.owner_id, items_table.c.id)
Index(None, items_table.c.created_at, items_table.c.id)
Index(None, items_table.c.updated_at, items_table.c.id)

# The key that signs tokens when HEROAPI_SECRET_KEY is not set: made once, at random, by the
# first process that needs it, and read by every other (workers, replicas, restarts).
app_secrets_table = Table(
    "app_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# Throttling counters (logins, registrations, password changes), one row per key and window.
rate_limits_table = Table(
    "rate_limits",
    metadata,
    Column("key", ExactText, primary_key=True),
    Column("hits", Integer, nullable=False),
    # Unix seconds: when this window ends (and the row may be deleted).
    Column("reset_at", BigInteger, nullable=False, index=True),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# One row per login: its refresh tokens, of which only the current one's SHA-256 is kept. A token
# carries its login's id (`id`), so a spent one is still recognized as this login's: presented
# again, it ends the login (the token was copied) without a row kept per spent token.
sessions_table = Table(
    "sessions",
    metadata,
    Column("id", String(SESSION_ID_LENGTH), primary_key=True),
    Column(
        "user_id",
        IdType,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # The account's security stamp at login: a password or role change ends the login.
    Column("security_stamp", String(SECURITY_STAMP_LENGTH), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    # Unix seconds: when the current refresh token expires (then the row is deleted), never
    # later than `ends_at`, the login's absolute end (HEROAPI_SESSION_MAX_DAYS).
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("ends_at", BigInteger, nullable=False),
    # Refreshes in the window ending at `window_ends_at` (HEROAPI_REFRESHES_PER_MINUTE).
    Column("refreshes", Integer, nullable=False),
    Column("window_ends_at", BigInteger, nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
