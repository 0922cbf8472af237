"""Tables and API schemas, in the tutorial's split-model pattern.

`hero_table` is the table (SQLAlchemy Core; Alembic's metadata). `HeroCreate`, `HeroPublic` and
`HeroUpdate` are the API's schemas, under the tutorial's names so clients generated from its
OpenAPI keep working. They are plain pydantic models, not SQLModel ones: SQLModel runs a
Python `__init__` for every instance, which doubled the cost of a 100-row page (see
docs/performance.md); nothing here loads rows into ORM objects, so a table model bought nothing.
"""

from typing import Annotated, Final

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

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

# What the columns hold: ids are 64-bit everywhere, `age` a 32-bit INTEGER.
ID_MAX: Final = 2**63 - 1
AGE_MAX: Final = 2**31 - 1
NAME_MAX_LENGTH: Final = 255


def _storable_text(value: str) -> str:
    """Refuse what no database stores as text: NUL characters and lone UTF-16 surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


Age = Annotated[int, Field(ge=0, le=AGE_MAX)]


hero_table = Table(
    "hero",
    metadata,
    # SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(NAME_MAX_LENGTH), nullable=False, index=True),
    Column("age", Integer, nullable=True, index=True),
    Column("secret_name", String(NAME_MAX_LENGTH), nullable=False),
    # MySQL/MariaDB: 4-byte UTF-8 (emoji) and transactions, whatever the server's defaults.
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
    def _not_null(cls, value: str | None) -> str:
        """`null` may clear `age`; `name` and `secret_name` are NOT NULL columns."""
        if value is None:
            raise ValueError("may be left out, but not set to null")
        return _storable_text(value)
