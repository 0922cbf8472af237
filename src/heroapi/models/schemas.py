"""The API schemas, in the tutorial's split-model pattern.

They carry the tutorials' names (`HeroCreate`, `HeroPublic`, `HeroUpdate`; `User`, `UserCreate`,
`Item`, `ItemCreate`; and `ItemUpdate`, the full-stack template's) so clients generated from their
OpenAPI keep working. They are plain pydantic models, not SQLModel ones: SQLModel runs a Python
`__init__` for every instance, which doubled the cost of a 100-row page (see
docs/performance.md); nothing here loads rows into ORM objects, so a table model bought nothing.
"""

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from heroapi.models.drift import check_columns, check_update_schema
from heroapi.models.fields import Age, EmailAddress, Password, not_null, storable_text
from heroapi.models.limits import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    REFRESH_TOKEN_MAX_LENGTH,
)
from heroapi.models.tables import hero_table, row_timestamps


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
        return storable_text(not_null(value))


# A hero field is declared once per place that needs its own facts: its type and checks in
# HeroCreate (HeroBase if public), its PATCH form in HeroUpdate, its SQL type and index in
# `hero_table` (and a migration). The queries, the JSON rendering (`rendering.py`) and
# MariaDB's read-back after an INSERT (`crud/heroes.py`) are derived from HeroPublic and
# HeroCreate; the checks below make the declarations that cannot be derived fail at import,
# rather than disagree at run time, when they drift apart. The row's timestamps are the
# database's own, in no response body.
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
        return storable_text(not_null(value))

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

    _email_not_null = field_validator("email")(not_null)


class UserUpdate(UserUpdateMe):
    """What a superuser may change on any account."""

    password: Password | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None

    _others_not_null = field_validator("password", "is_active", "is_superuser")(not_null)


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
