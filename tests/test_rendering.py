"""Heroes are rendered to JSON without HeroPublic instances: the bytes must be the model's."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from heroapi.models import HeroPublic
from heroapi.rendering import hero_json, heroes_json
from heroapi.routes.heroes import hero_response

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


def test_the_rendered_fields_are_heropublics_fields() -> None:
    # hero_json names the fields itself: a field added to HeroPublic must be added there too.
    assert tuple(HeroPublic.model_fields) == ("name", "age", "id")


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
