"""Tables and API schemas, in the tutorial's split-model pattern.

The tables (`hero`, `users`, `items`, as the tutorials name them) are SQLAlchemy Core, in
`metadata`, which Alembic compares with the migrations. The schemas carry the tutorials' names
(`HeroCreate`, `HeroPublic`, `HeroUpdate`; `User`, `UserCreate`, `Item`, `ItemCreate`) so clients
generated from their OpenAPI keep working. They are plain pydantic models, not SQLModel ones:
SQLModel runs a Python `__init__` for every instance, which doubled the cost of a 100-row page
(see docs/performance.md); nothing here loads rows into ORM objects, so a table model bought
nothing.
"""

from typing import Annotated, Final, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, Field, field_validator
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    false,
    true,
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

T = TypeVar("T")

# What the columns hold: ids are 64-bit everywhere, `age` a 32-bit INTEGER.
ID_MAX: Final = 2**63 - 1
AGE_MAX: Final = 2**31 - 1
NAME_MAX_LENGTH: Final = 255
EMAIL_MAX_LENGTH: Final = 254  # RFC 5321's limit on a forward path
HASH_MAX_LENGTH: Final = 255
DESCRIPTION_MAX_LENGTH: Final = 2000
PASSWORD_MIN_LENGTH: Final = 8
PASSWORD_MAX_LENGTH: Final = 128


def storable(value: str) -> bool:
    """Whether every database can store `value` as text (no NUL, no lone surrogate)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_null(value: T | None) -> T:
    """For PATCH bodies: a field may be left out, but a NOT NULL column cannot be set to null."""
    if value is None:
        raise ValueError("may be left out, but not set to null")
    return value


def _storable_text(value: str) -> str:
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
    _storable_text(value)
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"not a valid email address: {error}") from None


def email_key(email: str) -> str:
    """What makes two addresses the same account: compared case-insensitively."""
    return email.lower()


Age = Annotated[int, Field(ge=0, le=AGE_MAX)]
EmailAddress = Annotated[
    str,
    Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(_email_address),
]
Password = Annotated[
    str,
    Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(_storable_text),
]


# 64-bit ids; SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
IdType: Final = BigInteger().with_variant(Integer, "sqlite")

hero_table = Table(
    "hero",
    metadata,
    Column("id", IdType, primary_key=True),
    Column("name", String(NAME_MAX_LENGTH), nullable=False, index=True),
    Column("age", Integer, nullable=True, index=True),
    Column("secret_name", String(NAME_MAX_LENGTH), nullable=False),
    # MySQL/MariaDB: 4-byte UTF-8 (emoji) and transactions, whatever the server's defaults.
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)


users_table = Table(
    "users",
    metadata,
    Column("id", IdType, primary_key=True),
    # As the user typed it (domain normalized), for display.
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False),
    # email_key(email): the database refuses a second account for the same address, whatever
    # its case, even when two requests race.
    Column("email_key", String(EMAIL_MAX_LENGTH), nullable=False, unique=True),
    Column("hashed_password", String(HASH_MAX_LENGTH), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("is_superuser", Boolean, nullable=False, server_default=false()),
    # Bumped when the password changes: tokens carry it, so older tokens stop working.
    Column("token_generation", Integer, nullable=False, server_default="0"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

items_table = Table(
    "items",
    metadata,
    Column("id", IdType, primary_key=True),
    Column("title", String(NAME_MAX_LENGTH), nullable=False, index=True),
    Column("description", String(DESCRIPTION_MAX_LENGTH), nullable=True),
    # Deleting a user deletes their items, in the database itself: never an orphan.
    Column(
        "owner_id",
        IdType,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
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

    _storable = field_validator("name", "secret_name")(_storable_text)


class HeroUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    age: Age | None = None
    secret_name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)

    @field_validator("name", "secret_name")
    @classmethod
    def _stored_as_given(cls, value: str | None) -> str:
        """`null` may clear `age`; `name` and `secret_name` are NOT NULL columns."""
        return _storable_text(_not_null(value))


class ItemBase(BaseModel):
    title: str = Field(max_length=NAME_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)


class ItemCreate(ItemBase):
    @field_validator("title", "description")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return None if value is None else _storable_text(value)


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
    access_token: str
    token_type: str = "bearer"  # noqa: S105


class Message(BaseModel):
    """An answer with nothing but a message (errors: `{"detail": "..."}`)."""

    message: str
