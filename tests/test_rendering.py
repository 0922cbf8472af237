"""Heroes are rendered to JSON without HeroPublic instances: the bytes must be the model's."""

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, TypeAdapter, computed_field, field_serializer

from heroapi import crud
from heroapi.models import Age, HeroPublic, Item, User
from heroapi.rendering import (
    hero_json,
    heroes_json,
    item_json,
    items_json,
    json_renderers,
    user_json,
    users_json,
)
from heroapi.routes.heroes import hero_response
from tests.support import add_items, add_users

AWKWARD = [
    ("Deadpond", None, 1),
    ('Quote " and \\ backslash', 0, 2),
    ("Control \x01\x1f\n\t\r\x7f chars", 2**31 - 1, 2**63 - 1),
    ("Unicode é 漢字 🦸 \u2028\u2029", 42, 3),
    ("</script><!--", 7, 4),
    ("", None, 5),
]
# Every character a JSON string must escape (NUL is refused at the door), and some it need not.
EVERY_CONTROL = "".join(chr(code) for code in range(1, 32)) + "\x7f\x80\xa0\ufeff/'"

PAGE = TypeAdapter(list[HeroPublic])


@pytest.mark.parametrize("values", AWKWARD)
def test_one_hero_is_rendered_as_heropublic_would(values: tuple[object, ...]) -> None:
    name, age, hero_id = values
    expected = HeroPublic(name=name, age=age, id=hero_id).model_dump_json().encode()
    assert hero_json(values) == expected
    response = hero_response(values)
    assert response.body == expected
    assert response.media_type == "application/json"


def test_a_page_is_rendered_as_a_list_of_heropublic_would() -> None:
    models = [HeroPublic(name=n, age=a, id=i) for n, a, i in AWKWARD]
    assert heroes_json(AWKWARD) == PAGE.dump_json(models)
    assert heroes_json([]) == b"[]"


class MoreFields(BaseModel):
    """HeroPublic with fields added and reordered: what the renderers must follow."""

    id: int
    motto: str | None = Field(default=None, max_length=255)
    name: str
    level: Age


def test_the_renderers_follow_the_schemas_fields() -> None:
    rows = [
        (1, None, "Deadpond", 0),
        (2**63 - 1, 'Quote " and \\ backslash \x01', "Unicode é 🦸 \u2028", 2**31 - 1),
        (3, "", "", 7),
    ]
    one, page = json_renderers(MoreFields)
    models = [MoreFields(**dict(zip(MoreFields.model_fields, row, strict=True))) for row in rows]
    for row, model in zip(rows, models, strict=True):
        assert one(row) == model.model_dump_json().encode()
        assert one((*row, "a value past the schema's")) == model.model_dump_json().encode()
    assert page(rows) == TypeAdapter(list[MoreFields]).dump_json(models)
    assert page([]) == b"[]"


class WithOptionalBool(BaseModel):
    id: int
    active: bool | None  # a bool is written as one (bool()); None would become false


class WithOtherList(BaseModel):
    id: int
    items: list[HeroPublic]  # rendered as a list of Item values, not of HeroPublic ones


class WithTime(BaseModel):
    id: int
    born: datetime | None


class WithFloat(BaseModel):
    id: int
    power: float


class WithAlias(BaseModel):
    name: str = Field(alias="heroName")


class WithSerializationAlias(BaseModel):
    name: str = Field(serialization_alias="heroName")


class WithExcluded(BaseModel):
    name: str
    secret_name: str = Field(exclude=True)


class WithComputed(BaseModel):
    name: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def shout(self) -> str:
        return self.name.upper()


class WithSerializer(BaseModel):
    name: str

    @field_serializer("name")
    def _upper(self, name: str) -> str:
        return name.upper()


@pytest.mark.parametrize(
    "schema",
    [
        WithOptionalBool,
        WithTime,
        WithFloat,
        WithAlias,
        WithSerializationAlias,
        WithExcluded,
        WithComputed,
        WithSerializer,
    ],
)
def test_a_schema_the_renderers_would_not_reproduce_is_refused(schema: type[BaseModel]) -> None:
    with pytest.raises(TypeError, match=f"{schema.__name__} cannot be rendered from its values"):
        json_renderers(schema)


def test_a_nested_list_must_be_of_the_schema_named() -> None:
    with pytest.raises(TypeError, match="WithOtherList cannot be rendered"):
        json_renderers(WithOtherList, nested={"items": (Item, crud.ITEM_VALUES)})
    with pytest.raises(TypeError, match="WithOtherList cannot be rendered"):
        json_renderers(WithOtherList)  # a list field with nothing said of its values


# Items in crud.ITEM_VALUES' order (id, title, description, owner_id), users in USER_VALUES'
# (id, email, is_active as each driver gives it, is_superuser, security_stamp, items).
ITEMS = [
    (1, "Portal Gun", None, 7),
    (2**63 - 1, 'Quote " \\ \x01 \u2028 🦸', "", 2**63 - 1),
    (3, "", "</script>", 1),
]
USERS: list[tuple[Any, ...]] = [
    (7, "rick@example.com", 1, 0, "stamp", ITEMS[:1]),
    (8, "Ünïcode@example.com", 0, 1, "stamp", []),
    (9, "a@b.c", True, False, "stamp", ITEMS),
    (10, "d@e.f", False, True, "stamp", ITEMS[1:]),
]


def _item(values: tuple[Any, ...]) -> Item:
    return Item(**dict(zip(crud.ITEM_VALUES, values, strict=True)))


def _user(values: tuple[Any, ...]) -> User:
    user = dict(zip(crud.USER_VALUES, values, strict=True))
    return User(**user | {"items": [_item(item) for item in user["items"]]})


def test_items_and_users_are_rendered_as_their_models_would() -> None:
    for values in ITEMS:
        assert item_json((*values, 1_700_000_000)) == _item(values).model_dump_json().encode()
    assert items_json(ITEMS) == TypeAdapter(list[Item]).dump_json([_item(v) for v in ITEMS])
    for values in USERS:
        assert user_json((*values, 1_700_000_000)) == _user(values).model_dump_json().encode()
    assert users_json(USERS) == TypeAdapter(list[User]).dump_json([_user(v) for v in USERS])
    assert users_json([]) == items_json([]) == b"[]"


def test_pages_from_the_database_are_heropublics_bytes(client: TestClient) -> None:
    """On every backend, whatever the names hold and whatever each driver gives back."""
    names = [name for name, _, _ in AWKWARD] + [EVERY_CONTROL, "x" * 255, "🦸" * 255]
    ages: list[int | None] = [None, 0, 2**31 - 1, 42, 7, None, 1, 2, 3]
    for name, age in zip(names, ages, strict=True):
        response = client.post("/heroes/", json={"name": name, "age": age, "secret_name": "s"})
        assert response.status_code == 200, response.text
    created: list[dict[str, Any]] = client.get("/heroes/").json()
    assert [(hero["name"], hero["age"]) for hero in created] == list(zip(names, ages, strict=True))
    models = [HeroPublic(**hero) for hero in created]

    def body(**params: int) -> bytes:
        response = client.get("/heroes/", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        return response.content

    assert body() == PAGE.dump_json(models)
    assert body(offset=2, limit=3) == PAGE.dump_json(models[2:5])
    assert body(offset=len(models) - 1) == PAGE.dump_json(models[-1:])
    assert body(offset=len(models)) == b"[]"
    assert body(limit=0) == b"[]"


def test_users_and_items_from_the_database_are_their_models_bytes(client: TestClient) -> None:
    """On every backend (booleans are 0 and 1 from SQLite and MariaDB), both ways a read goes:
    the fast answer and FastAPI's handling (a query the fast answer does not read)."""
    users = add_users(client, ["one@example.com", "two@example.com", "three@example.com"])
    item = add_items(client, users[0], [EVERY_CONTROL, "x" * 255])[0]
    add_items(client, users[2], ["🦸" * 255])
    for path in ("/users/", "/users/?is_active=true", f"/users/{users[0]}", f"/users/0{users[0]}"):
        response = client.get(path)
        assert response.status_code == 200, path
        parsed = response.json()
        if isinstance(parsed, list):
            expected = TypeAdapter(list[User]).dump_json([User(**user) for user in parsed])
        else:
            expected = User(**parsed).model_dump_json().encode()
        assert response.content == expected, path
    for path in ("/items/", "/items/?order=-id", f"/items/{item}", f"/items/0{item}"):
        response = client.get(path)
        assert response.status_code == 200, path
        parsed = response.json()
        if isinstance(parsed, list):
            assert len(parsed) == 3
            expected = TypeAdapter(list[Item]).dump_json([Item(**item) for item in parsed])
        else:
            expected = Item(**parsed).model_dump_json().encode()
        assert response.content == expected, path
