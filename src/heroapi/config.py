"""Settings: every `HEROAPI_*` variable and `DATABASE_URL`, read once, from the environment or
`.env`, and checked at start (`get_settings()`); no other module reads heroapi's settings from
the environment. `DatabaseURL` and `parse_database_url` (`database_url.py`) are importable from
here too, beside the settings that name databases.
"""

import ipaddress
from functools import lru_cache
from typing import Annotated, Final, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from heroapi.database_url import DatabaseURL, DatabaseURLError, parse_database_url
from heroapi.origins import browser_origin

__all__ = [
    "DEFAULT_DATABASE_URL",
    "MIN_SECRET_KEY_LENGTH",
    "SQLITE_PAGE_SIZE",
    "DatabaseURL",
    "Settings",
    "get_settings",
    "parse_database_url",
]

DEFAULT_DATABASE_URL = "sqlite:///heroapi.db"
MIN_SECRET_KEY_LENGTH = 32


# Bytes a page of a SQLite file heroapi creates (`HEROAPI_SQLITE_PAGE_SIZE`).
SQLITE_PAGE_SIZE: Final = 2048


class Settings(BaseSettings):
    """Every setting of heroapi; environment variables carry the `HEROAPI_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="HEROAPI_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        # `NAME=` (a line of .env.example uncommented as it stands) means the default, unset.
        env_ignore_empty=True,
    )

    database_url: Annotated[
        str,
        Field(
            validation_alias=AliasChoices("HEROAPI_DATABASE_URL", "DATABASE_URL"),
            description="Which database: sqlite:///FILE, postgresql://..., mysql://...",
        ),
    ] = DEFAULT_DATABASE_URL
    database_pool_size: Annotated[int, Field(ge=1, le=1000)] = 20
    database_pool_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    database_connect_timeout: Annotated[float, Field(gt=0, le=600)] = 5.0
    database_command_timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # A connection pooler between heroapi and PostgreSQL (PgBouncer, Supavisor...): "auto" finds
    # one at start-up and then assumes transaction pooling, the mode that allows the least.
    database_pooler: Literal["auto", "none", "session", "transaction"] = "auto"
    # PostgreSQL streaming replicas (comma-separated URLs): reads outside a transaction go to
    # one that is up and at most `replica_max_lag` seconds behind (db/replicas.py).
    database_replica_urls: Annotated[list[str], NoDecode] = []
    # 5 s: a healthy streaming replica replays within milliseconds, so seconds of lag mean it is
    # struggling (a long query holding replay back, I/O, network); 5 s is the most a client may
    # read behind other clients' writes, and ten times the lag monitor's sampling step (0.5 s),
    # so a healthy replica never flaps in and out.
    # At least 1 s: twice the monitor's step, or a replica would be in and out between checks.
    replica_max_lag: Annotated[float, Field(ge=1, le=3600)] = 5.0
    sqlite_busy_timeout: Annotated[float, Field(ge=0, le=600)] = 10.0
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    # The page cache holds every page the process touched, up to its size: a write-heavy load
    # grew the process by its full size, and memory-mapped pages count as the process's too,
    # for no measured gain in speed (docs/performance.md).
    sqlite_cache_size_mb: Annotated[int, Field(ge=1, le=65536)] = 8
    sqlite_mmap_size_mb: Annotated[int, Field(ge=0, le=65536)] = 0
    # Small rows (a hero is ~50 bytes): a write copies fewer bytes into the log and the
    # database file than with SQLite's default 4096 (docs/performance.md). Only a new
    # database file takes it; an existing one keeps the size it was made with.
    sqlite_page_size: Annotated[int, Field(ge=512, le=65536)] = SQLITE_PAGE_SIZE
    # Seconds a read may run on the event loop before SQLite interrupts it (the request gets a
    # 503; 0: no limit). Writes, migrations and checkpoints are never interrupted.
    sqlite_statement_budget: Annotated[float, Field(ge=0, le=600)] = 0.02
    migrate_on_start: bool = True
    # Where migrations connect, when not DATABASE_URL (e.g. straight to PostgreSQL, past a pooler).
    migration_database_url: str | None = None
    migration_lock_timeout: Annotated[float, Field(gt=0, le=3600)] = 300.0

    # The deepest `offset`/`skip` a list accepts (None: any, as the tutorial): an offset page
    # costs time in proportion to its depth.
    max_offset: Annotated[int | None, Field(ge=0)] = None
    # The deepest `offset`/`skip` a list accepts under an `order=` other than id (None: any):
    # such a page sorts and steps over every row before it (10,000 rows: ~20 ms on SQLite,
    # with the event loop waiting). The id order's offsets stay unbounded, as in the tutorial.
    max_sorted_offset: Annotated[int | None, Field(ge=0)] = 5_000
    # `Prefer: count=exact` counts at most this many rows, then answers "at least" one more
    # (`X-Total-Count-At-Least`): a count costs the rows it reads.
    count_limit: Annotated[int, Field(ge=0, le=100_000_000)] = 10_000
    max_body_size: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # A refused body (413) of up to this many bytes, arriving within this many seconds, is read
    # and dropped before the connection closes, so its client can read the 413
    # (middleware/body_limit.py).
    body_discard_size: Annotated[int, Field(ge=0)] = 16 * 1024 * 1024
    body_discard_seconds: Annotated[float, Field(ge=0, le=600)] = 10.0
    access_log: bool = True
    # FastAPI's own OpenTelemetry spans and metrics, for a process that configures OpenTelemetry
    # providers (an SDK, e.g. under `opentelemetry-instrument`). Off, FastAPI skips the check
    # for one that it would otherwise make on every request (~5% of a small GET).
    opentelemetry: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    cors_origins: Annotated[list[str], NoDecode] = []
    gzip_minimum_size: Annotated[int, Field(ge=0)] = 1000
    health_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0

    env: Literal["development", "production"] = "development"
    auth_mode: Literal["open", "required"] = "open"
    # None: a random key made once and kept in the database (`app_secrets`), shared by every
    # worker and replica. No key written in the source ever signs a token.
    secret_key: SecretStr | None = None
    access_token_expire_minutes: Annotated[int, Field(ge=1, le=60 * 24)] = 15
    refresh_token_expire_days: Annotated[int, Field(ge=1, le=366)] = 14
    # A login ends this many days after it was made, however often it is refreshed.
    session_max_days: Annotated[int, Field(ge=1, le=3660)] = 30
    # Refreshes per login per minute: a client refreshes once per access token (15 minutes by
    # default); a loop of refreshes is answered 429.
    refreshes_per_minute: Annotated[int, Field(ge=1, le=600)] = 10
    token_issuer: Annotated[str, Field(min_length=1, max_length=255)] = "heroapi"  # noqa: S105 (a name, not a secret)
    token_audience: Annotated[str, Field(min_length=1, max_length=255)] = "heroapi"  # noqa: S105 (a name, not a secret)
    password_min_length: Annotated[int, Field(ge=1, le=128)] = 8
    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    # Throttling (counted in the database: every worker and replica sees the same counts).
    throttle_window: Annotated[int, Field(ge=1, le=86400)] = 900
    login_failures_per_account: Annotated[int, Field(ge=1)] = 10
    login_failures_per_address: Annotated[int, Field(ge=1)] = 30
    # None: registrations are not counted (a seeding script, a test suite or a backend that
    # registers for its users is one address). Superusers are never counted.
    registrations_per_address: Annotated[int | None, Field(ge=1)] = None
    # Seconds a 429 is held back from a client that keeps trying past its limit (0: never).
    throttle_hold: Annotated[float, Field(ge=0, le=60)] = 1.0
    # Addresses (or networks, CIDR) of the reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # Password hashing: Argon2 holds 19 MiB per hash, so this many run at once; the others wait
    # their turn, taken in rotation between client addresses, at most this many and this long.
    password_hash_workers: Annotated[int, Field(ge=1, le=64)] = 2
    password_hash_queue: Annotated[int, Field(ge=0, le=100_000)] = 256
    password_hash_wait: Annotated[float, Field(gt=0, le=600)] = 30.0
    # Removed: one address's hashes now wait their turn instead of being refused (429). Still
    # read, so that a deployment that sets it is told at start, not silently ignored.
    password_hashes_per_address: Annotated[
        int | None, Field(deprecated="removed; setting it is an error")
    ] = None

    # When set, /metrics answers only requests bearing it (`Authorization: Bearer ...`).
    metrics_token: SecretStr | None = None

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str | None) -> str | None:
        if value is not None:
            parse_database_url(value)
        return value

    @field_validator("sqlite_page_size")
    @classmethod
    def _page_size_is_a_power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("must be a power of two from 512 to 65536")
        return value

    @field_validator("max_sorted_offset", mode="before")
    @classmethod
    def _none_is_no_bound(cls, value: object) -> object:
        """`HEROAPI_MAX_SORTED_OFFSET=none` (or empty): any offset, as under the id order."""
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    @field_validator("cors_origins", "trusted_proxies", "database_replica_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`HEROAPI_CORS_ORIGINS=https://a.example,https://b.example`."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [origin if origin == "*" else browser_origin(origin) for origin in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # a ValueError names a bad entry
        return value

    @field_validator("database_replica_urls")
    @classmethod
    def _replicas_are_postgres(cls, value: list[str]) -> list[str]:
        for number, url in enumerate(value):
            try:
                backend = parse_database_url(url).backend
            except DatabaseURLError:
                backend = None
            if backend != "postgresql":
                raise ValueError(f"replica {number} is not a postgresql:// database URL")
        return value

    @field_validator("secret_key", "metrics_token")
    @classmethod
    def _secret_key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} characters long")
        return value

    # The checks across settings: each message starts with the variable it is about, `NAME: `
    # (their errors have no field of their own; `heroapi` prints the message as it is).
    @model_validator(mode="after")
    def _migrations_run_on_the_same_kind_of_database(self) -> "Settings":
        if self.migration_database.backend != self.database.backend:
            raise ValueError(
                "HEROAPI_MIGRATION_DATABASE_URL: must name the same kind of database as "
                f"DATABASE_URL ({self.database.backend}), not {self.migration_database.backend}"
            )
        return self

    @model_validator(mode="after")
    def _first_superuser_is_complete(self) -> "Settings":
        names = ("HEROAPI_FIRST_SUPERUSER_EMAIL", "HEROAPI_FIRST_SUPERUSER_PASSWORD")
        if self.first_superuser_email is None and self.first_superuser_password is not None:
            raise ValueError(f"{names[0]}: not set, but {names[1]} is (set both, or neither)")
        if self.first_superuser_email is not None and self.first_superuser_password is None:
            raise ValueError(f"{names[1]}: not set, but {names[0]} is (set both, or neither)")
        if self.first_superuser_email is None or self.first_superuser_password is None:
            return self
        # The API's own rules for an account (a late import: models come after config).
        from heroapi.models import UserCreate

        password = self.first_superuser_password.get_secret_value()
        try:
            UserCreate(email=self.first_superuser_email, password=password)
        except ValidationError as error:
            first = error.errors(include_input=False)[0]
            name = f"HEROAPI_FIRST_SUPERUSER_{str(first['loc'][0]).upper()}"
            raise ValueError(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None
        if len(password) < self.password_min_length:
            raise ValueError(
                f"{names[1]}: must be at least {self.password_min_length} characters long "
                "(HEROAPI_PASSWORD_MIN_LENGTH)"
            )
        return self

    @field_validator("password_hashes_per_address", mode="before")
    @classmethod
    def _removed(cls, value: object) -> object:
        if value is not None:
            raise ValueError(
                "was removed: a client's password hashes wait their turn (fair between "
                "addresses) instead of 429; see HEROAPI_PASSWORD_HASH_QUEUE and "
                "HEROAPI_PASSWORD_HASH_WAIT, and unset it"
            )
        return value

    @model_validator(mode="after")
    def _replicas_follow_postgres(self) -> "Settings":
        if self.database_replica_urls and self.database.backend != "postgresql":
            raise ValueError("HEROAPI_DATABASE_REPLICA_URLS: needs a PostgreSQL DATABASE_URL")
        return self

    @property
    def database(self) -> DatabaseURL:
        """The parsed `DATABASE_URL`, with the driver heroapi uses for it."""
        return parse_database_url(self.database_url)

    @property
    def migration_database(self) -> DatabaseURL:
        """Where migrations run: `HEROAPI_MIGRATION_DATABASE_URL`, or else `DATABASE_URL`."""
        if self.migration_database_url is None:
            return self.database
        return parse_database_url(self.migration_database_url)


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment and `.env`."""
    return Settings()
