"""Tables and API schemas, in the tutorial's split-model pattern.

`Hero` is the table (Alembic's metadata); `HeroCreate`, `HeroPublic` and `HeroUpdate` are the API's
schemas, under the tutorial's names so clients generated from its OpenAPI keep working.
"""

from typing import Annotated, Final

from pydantic import field_validator
from sqlalchemy import BigInteger, Column, Integer
from sqlmodel import Field, SQLModel

# Constraint names Alembic can find again on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# What the columns hold: ids are 64-bit everywhere, `age` a 32-bit INTEGER.
ID_MAX: Final = 2**63 - 1
AGE_MAX: Final = 2**31 - 1
NAME_MAX_LENGTH: Final = 255

# MySQL/MariaDB: 4-byte UTF-8 (emoji) and a transactional engine, whatever the server's defaults.
MYSQL_TABLE_OPTIONS: Final = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


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


class HeroBase(SQLModel):
    name: str = Field(index=True, max_length=NAME_MAX_LENGTH)
    age: Age | None = Field(default=None, index=True)


class Hero(HeroBase, table=True):
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: int | None = Field(
        default=None,
        # SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    secret_name: str = Field(max_length=NAME_MAX_LENGTH)


class HeroPublic(HeroBase):
    # Output only: no Python-level validators here, they would run for every row of a list.
    id: int


class HeroCreate(HeroBase):
    secret_name: str = Field(max_length=NAME_MAX_LENGTH)

    _storable = field_validator("name", "secret_name")(_storable_text)


class HeroUpdate(SQLModel):
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
