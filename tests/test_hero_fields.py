"""The hero fields are declared in the schemas (and, where the schemas cannot say it, in the table
and HeroUpdate); what is derived follows them, and declarations that drift apart are refused."""

from typing import Any

import pytest
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Column, Integer, MetaData, String, Table

from heroapi.models import (
    NAME_MAX_LENGTH,
    Age,
    HeroCreate,
    HeroPublic,
    HeroUpdate,
    check_columns,
    check_update_schema,
)


def hero_like_table(*columns: Column[Any]) -> Table:
    return Table(
        "hero",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(NAME_MAX_LENGTH), nullable=False),
        Column("age", Integer, nullable=True),
        *columns,
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (hero_like_table(), "HeroCreate.secret_name has no column"),
        (
            hero_like_table(
                Column("secret_name", String(NAME_MAX_LENGTH), nullable=False),
                Column("power", Integer, nullable=True),
            ),
            "column 'power' is in no schema",
        ),
        (
            hero_like_table(Column("secret_name", String(NAME_MAX_LENGTH), nullable=True)),
            "HeroCreate.secret_name refuses null, its column is NULL",
        ),
        (
            hero_like_table(Column("secret_name", String(100), nullable=False)),
            "HeroCreate.secret_name has max_length=255, its column holds 100",
        ),
        (
            hero_like_table(Column("secret_name", Integer, nullable=False)),
            "HeroCreate.secret_name is str, its column int",
        ),
    ],
)
def test_a_table_that_disagrees_with_the_schemas_is_refused(table: Table, problem: str) -> None:
    with pytest.raises(TypeError, match=problem):
        check_columns(table, HeroCreate, HeroPublic)


def test_columns_no_schema_shows_must_be_named_private() -> None:
    table = hero_like_table(
        Column("secret_name", String(NAME_MAX_LENGTH), nullable=False),
        Column("created_at", Integer, nullable=False),
    )
    with pytest.raises(TypeError, match="column 'created_at' is in no schema"):
        check_columns(table, HeroCreate, HeroPublic)
    check_columns(table, HeroCreate, HeroPublic, private=["created_at"])


def refuse_null(value: str | None) -> str:
    if value is None:
        raise ValueError("may be left out, but not set to null")
    return value


class NoSecretName(BaseModel):
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    age: Age | None = None

    _not_null = field_validator("name")(refuse_null)


class RequiredAge(HeroUpdate):
    age: Age | None


class NullName(BaseModel):
    """`name: null` let through: a NOT NULL violation in the database, a 500 for the client."""

    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    age: Age | None = None
    secret_name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)

    _not_null = field_validator("secret_name")(refuse_null)


class LongerName(HeroUpdate):
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH + 1)


class AgeAsText(HeroUpdate):
    age: str | None = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        (NoSecretName, r"fields missing: \['secret_name'\]"),
        (RequiredAge, "age must default to None"),
        (NullName, "name: null must be refused"),
        (NullName, r"fields with validators: \['name', 'secret_name'\] in HeroCreate"),
        (LongerName, "name: .* is not .* made optional"),
        (AgeAsText, "age: .* is not .* made optional"),
    ],
)
def test_a_patch_body_that_drifted_from_herocreate_is_refused(
    update: type[BaseModel], problem: str
) -> None:
    expected = f"{update.__name__} does not match HeroCreate: .*{problem}"
    with pytest.raises(TypeError, match=expected):
        check_update_schema(HeroCreate, update)
