"""Tables and API schemas, in the tutorial's split-model pattern.

The tables (`hero`, `users`, `items`, as the tutorials name them) are SQLAlchemy Core, in
`metadata`, which Alembic compares with the migrations. The schemas carry the tutorials' names
(`HeroCreate`, `HeroPublic`, `HeroUpdate`; `User`, `UserCreate`, `Item`, `ItemCreate`; and
`ItemUpdate`, the full-stack template's) so clients generated from their OpenAPI keep working.
They are plain pydantic models, not SQLModel ones: SQLModel runs a Python `__init__` for every
instance, which doubled the cost of a 100-row page (see docs/performance.md); nothing here loads
rows into ORM objects, so a table model bought nothing.
"""

import unicodedata
from collections.abc import Collection
from datetime import datetime
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

from annotated_types import MaxLen
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
    true,
)
from sqlalchemy.dialects.mysql import TIMESTAMP, VARBINARY, VARCHAR
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

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

T = TypeVar("T")

# What the columns hold: ids are 64-bit everywhere, `age` a 32-bit INTEGER.
ID_MAX: Final = 2**63 - 1
AGE_MAX: Final = 2**31 - 1
NAME_MAX_LENGTH: Final = 255
EMAIL_MAX_LENGTH: Final = 254  # RFC 5321's limit on a forward path
HASH_MAX_LENGTH: Final = 255
DESCRIPTION_MAX_LENGTH: Final = 2000
PASSWORD_MAX_LENGTH: Final = 128
REFRESH_TOKEN_MAX_LENGTH: Final = 128
SESSION_ID_LENGTH: Final = 32


def _not_null(value: T | None) -> T:
    """For PATCH bodies: a field may be left out, but a NOT NULL column cannot be set to null."""
    if value is None:
        raise ValueError("may be left out, but not set to null")
    return value


def storable_text(value: str) -> str:
    """Refuse what no database stores as text: NUL characters and lone UTF-16 surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _email_address(value: str) -> str:
    """A syntactically valid address, its domain normalized (lowercase, IDNA); no DNS lookup."""
    storable_text(value)
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"not a valid email address: {error}") from None


def email_key(email: str) -> str:
    """What makes two addresses the same account: the normalized address (NFC, as registration
    stores it), compared case-insensitively and otherwise exactly, on every backend."""
    return unicodedata.normalize("NFC", email).lower()


def normalized_email(value: str) -> str | None:
    """The address as registration would store it, or None if no account can have it (what a
    login form's `username` is looked up by)."""
    try:
        return _email_address(value)
    except ValueError:
        return None


Age = Annotated[int, Field(ge=0, le=AGE_MAX)]
EmailAddress = Annotated[
    str,
    Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(_email_address),
]
# The minimum length is a setting (HEROAPI_PASSWORD_MIN_LENGTH), checked by the routes and
# written into the OpenAPI document by heroapi.openapi.
Password = Annotated[
    str,
    Field(max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(storable_text),
]


# 64-bit ids; SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
IdType: Final = BigInteger().with_variant(Integer, "sqlite")
# No id is ever handed out twice, on any backend: PostgreSQL's sequences and InnoDB's counter
# never go back; SQLite needs AUTOINCREMENT (`sqlite_autoincrement=True` on each table with an
# id), without which it reuses the largest id once its row is deleted (a deleted account's id
# would go to the next one registered).
# MySQL/MariaDB compare strings by the column's collation: accent- and case-insensitive, with
# trailing spaces ignored. A key that must compare exactly is stored as bytes there (4 per
# character at most in UTF-8).
ExactText = String(EMAIL_MAX_LENGTH).with_variant(VARBINARY(4 * EMAIL_MAX_LENGTH), "mysql")


def code_point_text(length: int) -> String:
    """Text that every backend compares as SQLite's default BINARY collation does: exactly (case,
    accents and trailing spaces count) and in Unicode code point order ('Z' < 'a' < 'é'). A list
    sorted or filtered on such a column answers the same on all three, and a prefix is a plain
    range of its index (`col >= 'ab' AND col < 'ac'`). PostgreSQL's "C" collation compares the
    UTF-8 bytes, whose order is the code points'; MariaDB's `utf8mb4_nopad_bin` compares code
    points with no padding ('a' <> 'a ')."""
    return (
        String(length)
        .with_variant(String(length, collation="C"), "postgresql")
        .with_variant(VARCHAR(length, charset="utf8mb4", collation="utf8mb4_nopad_bin"), "mysql")
    )


class nulls_low(UnaryExpression[Any]):  # noqa: N801 (an SQL construct, named as one)
    """`column` in ascending (or `descending`) order, NULL below every value: first going up,
    last going down. SQLite and MariaDB sort NULL so already and have no NULLS clause in an
    index; PostgreSQL sorts it above every value, so there alone this adds NULLS FIRST (going
    up) or NULLS LAST (going down), and only to a column that may be NULL: on a NOT NULL one the
    clause would change nothing but keep a plain (column, id) index from serving the order.
    For an index column and an ORDER BY alike: an index on `nulls_low(age)` is read forwards
    for `nulls_low(age)` and backwards for `nulls_low(age, descending=True)`."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], *, descending: bool = False) -> None:
        # ASC/DESC as the modifier keeps it a plain column to Alembic's index comparison and to
        # MySQL's CREATE INDEX (which would make any other expression a functional index).
        super().__init__(column, modifier=operators.desc_op if descending else operators.asc_op)


@compiles(nulls_low)
def _nulls_low(element: nulls_low, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.element, **kw)
    if element.modifier is operators.desc_op:
        nulls, ordered = "NULLS LAST", f"{column} DESC"
    else:
        nulls, ordered = "NULLS FIRST", f"{column} ASC"
    if compiler.dialect.name != "postgresql" or not getattr(element.element, "nullable", True):
        return ordered
    return f"{ordered} {nulls}"


SECURITY_STAMP_LENGTH: Final = 32


class random_stamp(FunctionElement[str]):  # noqa: N801 (an SQL function, named as one)
    """32 random hex characters made by the database: the security stamp of a row inserted
    without one (by hand, a restore, a bulk load). heroapi itself sets stamps from `secrets`."""

    type = String(SECURITY_STAMP_LENGTH)
    inherit_cache = True


# Each backend's own expression (in parentheses where the DDL needs them).
RANDOM_STAMP_SQL: Final = {
    "sqlite": "(lower(hex(randomblob(16))))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
    "mysql": "(replace(uuid(), '-', ''))",
}


@compiles(random_stamp)
def _random_stamp(element: random_stamp, compiler: SQLCompiler, **_: object) -> str:
    return RANDOM_STAMP_SQL[compiler.dialect.name]


class utc_now(FunctionElement[datetime]):  # noqa: N801 (an SQL function, named as one)
    """The database's clock, in UTC, as precisely as the backend keeps it: a row's `created_at`.

    SQLite has no time type: the text `YYYY-MM-DD HH:MM:SS.SSS` (milliseconds, its best).
    PostgreSQL: `timestamptz`, microseconds. MariaDB: `TIMESTAMP(6)`, microseconds, kept in UTC
    whatever the writing session's `time_zone` (a `DATETIME` would keep the writer's local time).
    """

    type = DateTime(timezone=True)
    inherit_cache = True


class utc_now_on_update(utc_now):  # noqa: N801
    """`utc_now`, and on MariaDB again at every UPDATE that changes the row (`ON UPDATE`, which
    MySQL keeps in the column's default). SQLite and PostgreSQL do it with a trigger of the
    migration's (0004), which the models cannot declare."""

    inherit_cache = True


UTC_NOW_SQL: Final = {
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
    "postgresql": "now()",
    "mysql": "CURRENT_TIMESTAMP(6)",
}


@compiles(utc_now)
def _utc_now(element: utc_now, compiler: SQLCompiler, **_: object) -> str:
    sql = UTC_NOW_SQL[compiler.dialect.name]
    if isinstance(element, utc_now_on_update) and compiler.dialect.name == "mysql":
        return f"{sql} ON UPDATE {sql}"
    return sql


# Microseconds on every backend that has them (SQLite stores the text utc_now gives it).
Timestamp: Final = DateTime(timezone=True).with_variant(TIMESTAMP(fsp=6), "mysql")


def row_timestamps() -> tuple[Column[Any], Column[Any]]:
    """`created_at` and `updated_at`, set by the database alone (whoever writes the row: heroapi,
    a script, an operator's SQL), so they can be trusted as the row's history: UTC, never from a
    client's or an app server's clock. Not part of any response body; single-resource reads send
    `updated_at` as `Last-Modified`."""
    return (
        Column("created_at", Timestamp, nullable=False, server_default=utc_now()),
        Column("updated_at", Timestamp, nullable=False, server_default=utc_now_on_update()),
    )


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


class HeroBase(BaseModel):
    name: str = Field(max_length=NAME_MAX_LENGTH)
    age: Age | None = None


class HeroPublic(HeroBase):
    # Output only: no Python-level validators here, they would run for every row of a list.
    id: int


class HeroCreate(HeroBase):
    secret_name: str = Field(max_length=NAME_MAX_LENGTH)

    _storable = field_validator("name", "secret_name")(storable_text)


class HeroUpdate(BaseModel):
    # HeroCreate's fields, each optional, written out: a class built from HeroCreate at run time
    # would be no type to mypy, nor to the route that takes it. `check_update_schema` below
    # refuses, at import, a HeroUpdate that has drifted from HeroCreate.
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    age: Age | None = None
    secret_name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)

    @field_validator("name", "secret_name")
    @classmethod
    def _stored_as_given(cls, value: str | None) -> str:
        """`null` may clear `age`; `name` and `secret_name` are NOT NULL columns."""
        return storable_text(_not_null(value))


# A hero field is declared once per place that needs its own facts: its type and checks in
# HeroCreate (HeroBase if public), its PATCH form in HeroUpdate, its SQL type and index in
# `hero_table` (and a migration). The queries, the JSON rendering (`rendering.py`) and
# MariaDB's read-back after an INSERT (`crud/heroes.py`) are derived from HeroPublic and
# HeroCreate; the checks below make the declarations that cannot be derived fail at import,
# rather than disagree at run time, when they drift apart.


def _types(annotation: Any) -> tuple[Any, ...]:
    """The types a field's annotation allows (`int | None`: int and NoneType)."""
    if get_origin(annotation) in (Union, UnionType):
        return get_args(annotation)
    return (annotation,)


def _takes_null(field: FieldInfo) -> bool:
    return any(kind in (NoneType, Any) for kind in _types(field.annotation))


def _python_types(field: FieldInfo) -> set[Any]:
    """The Python types of a field's values other than None (`Age | None`: int)."""
    return {
        get_args(kind)[0] if get_origin(kind) is Annotated else kind
        for kind in _types(field.annotation)
        if kind is not NoneType
    }


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _max_length(field: FieldInfo) -> int | None:
    return next((item.max_length for item in field.metadata if isinstance(item, MaxLen)), None)


def check_columns(table: Table, *schemas: type[BaseModel], private: Collection[str] = ()) -> None:
    """Raise TypeError unless every field of `schemas` has its column in `table`, of the field's
    Python type, NULL where the field takes `null` and NOT NULL where it does not, as long as the
    field's `max_length`; and every column is some schema's field, or one of the `private`
    columns no schema shows."""
    problems = []
    fields: dict[str, FieldInfo] = {}
    for schema in schemas:
        for name, field in schema.model_fields.items():
            fields.setdefault(name, field)
            column = table.columns.get(name)
            if column is None:
                problems.append(f"{schema.__name__}.{name} has no column")
                continue
            if _python_types(field) != {column.type.python_type}:
                kinds = " | ".join(sorted(map(_type_name, _python_types(field))))
                problems.append(
                    f"{schema.__name__}.{name} is {kinds}, "
                    f"its column {_type_name(column.type.python_type)}"
                )
            if _takes_null(field) != column.nullable:
                takes = "takes" if _takes_null(field) else "refuses"
                null = "NULL" if column.nullable else "NOT NULL"
                problems.append(f"{schema.__name__}.{name} {takes} null, its column is {null}")
            length = getattr(column.type, "length", None)
            if length is not None and _max_length(field) != length:
                problems.append(
                    f"{schema.__name__}.{name} has max_length={_max_length(field)}, "
                    f"its column holds {length}"
                )
    problems.extend(
        f"column {column.name!r} is in no schema (add the field, or list it as private)"
        for column in table.columns
        if column.name not in fields and column.name not in private
    )
    if problems:
        raise TypeError(f"table {table.name!r} and its schemas disagree: " + "; ".join(problems))


def _validated_fields(schema: type[BaseModel]) -> set[str]:
    validators = schema.__pydantic_decorators__.field_validators.values()
    return {name for validator in validators for name in validator.info.fields}


def _null_taken(schema: type[BaseModel], name: str) -> bool:
    """Whether `schema` validates a body that sets its field `name` to `null`."""
    try:
        schema.model_validate({name: None})
    except ValidationError as error:
        return all(problem["loc"][:1] != (name,) for problem in error.errors())
    return True


def _optional_problems(
    update: type[BaseModel], name: str, created: FieldInfo, updated: FieldInfo
) -> list[str]:
    """What keeps `update`'s field `name` (`updated`) from being `created` made optional."""
    problems = []
    if updated.is_required() or updated.default is not None:
        problems.append(f"{name} must default to None (a PATCH may leave it out)")
    without_null = [
        tuple(kind for kind in _types(field.annotation) if kind is not NoneType)
        for field in (created, updated)
    ]
    if without_null[0] != without_null[1] or created.metadata != updated.metadata:
        problems.append(f"{name}: {updated} is not {created} made optional")
    takes_null = _null_taken(update, name)
    if takes_null != _takes_null(created):
        problems.append(f"{name}: null must be {'refused' if takes_null else 'taken'}")
    return problems


def check_update_schema(create: type[BaseModel], update: type[BaseModel]) -> None:
    """Raise TypeError unless `update` (a PATCH body) has `create`'s fields, each optional, of the
    same type and constraints, with the same fields checked by validators, and refusing `null`
    exactly where `create` does (a NOT NULL column may be left out of a PATCH, not set to null)."""
    problems = []
    missing = create.model_fields.keys() - update.model_fields.keys()
    extra = update.model_fields.keys() - create.model_fields.keys()
    if missing or extra:
        problems.append(f"fields missing: {sorted(missing)}, extra: {sorted(extra)}")
    for name, created in create.model_fields.items():
        updated = update.model_fields.get(name)
        if updated is not None:
            problems.extend(_optional_problems(update, name, created, updated))
    if _validated_fields(create) != _validated_fields(update):
        problems.append(
            f"fields with validators: {sorted(_validated_fields(create))} in "
            f"{create.__name__}, {sorted(_validated_fields(update))} in {update.__name__}"
        )
    if problems:
        raise TypeError(
            f"{update.__name__} does not match {create.__name__}: " + "; ".join(problems)
        )


# The row's timestamps are the database's own, in no response body.
check_columns(
    hero_table, HeroCreate, HeroPublic, private=[column.name for column in row_timestamps()]
)
check_update_schema(HeroCreate, HeroUpdate)


class ItemBase(BaseModel):
    title: str = Field(max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)


class ItemCreate(ItemBase):
    @field_validator("title", "description")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return None if value is None else storable_text(value)


class ItemUpdate(BaseModel):
    """The fields of an item to change (PATCH): those left out stay as they are."""

    title: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)

    @field_validator("title")
    @classmethod
    def _title_stored_as_given(cls, value: str | None) -> str:
        """`title` is a NOT NULL column: it may be left out, not set to null."""
        return storable_text(_not_null(value))

    @field_validator("description")
    @classmethod
    def _description_storable(cls, value: str | None) -> str | None:
        """`null` clears the description."""
        return None if value is None else storable_text(value)


class Item(ItemBase):
    id: int
    owner_id: int


class UserBase(BaseModel):
    email: str


class UserCreate(BaseModel):
    email: EmailAddress
    password: Password


class User(UserBase):
    id: int
    is_active: bool
    items: list[Item] = []


class UserUpdateMe(BaseModel):
    email: EmailAddress | None = None

    _email_not_null = field_validator("email")(_not_null)


class UserUpdate(UserUpdateMe):
    """What a superuser may change on any account."""

    password: Password | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None

    _others_not_null = field_validator("password", "is_active", "is_superuser")(_not_null)


class UpdatePassword(BaseModel):
    current_password: str = Field(max_length=PASSWORD_MAX_LENGTH)
    new_password: Password


class Token(BaseModel):
    """The tutorial's token answer, with OAuth2's `expires_in` and `refresh_token` added."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_in: int | None = None
    refresh_token: str | None = None


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=REFRESH_TOKEN_MAX_LENGTH)


class Deleted(BaseModel):
    """The answer to a DELETE that deleted: always `{"ok": true}`."""

    ok: Literal[True]


class Message(BaseModel):
    """An answer with nothing but a message (errors: `{"detail": "..."}`)."""

    message: str
