"""The hero fields are declared in the schemas (and, where the schemas cannot say it, in the table
and HeroUpdate); what is derived follows them, and declarations that drift apart are refused."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Column, Integer, MetaData, String, Table

from heroapi import crud
from heroapi.db import Database
from heroapi.models import (
    NAME_MAX_LENGTH,
    Age,
    HeroCreate,
    HeroPublic,
    HeroUpdate,
    check_columns,
    check_update_schema,
)

RunInApp = Callable[[Callable[[Database], Awaitable[Any]]], Any]


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


@pytest.mark.parametrize("backend", ["sqlite", "mysql"], indirect=True)
def test_a_new_hero_without_returning_is_read_back_in_heropublics_order(
    backend: str, client: TestClient, run_in_app: RunInApp
) -> None:
    """MariaDB has no INSERT ... RETURNING; on SQLite the same path is taken by asking it not to
    use RETURNING. Either way the values must be the ones the hero is read back with."""
    hero = HeroCreate(name="Rusty-Man", age=48, secret_name="Tommy Sharp")

    async def create_and_read(database: Database) -> tuple[dict[str, Any], Any]:
        if backend == "sqlite":
            assert database.supports_returning
            database.supports_returning = False
        assert not database.supports_returning
        created = await crud.create_hero(database=database, hero=hero)
        public = dict(zip(HeroPublic.model_fields, created, strict=True))
        return public, await crud.get_hero(database=database, hero_id=public["id"])

    public, read = run_in_app(create_and_read)
    assert public == {"name": "Rusty-Man", "age": 48, "id": public["id"]}
    assert isinstance(public["id"], int)
    assert read is not None
    assert tuple(public.values()) == tuple(read[: crud.HERO_LAST_MODIFIED])
