"""Heroes are rendered to JSON without HeroPublic instances: the bytes must be the model's."""

import pytest
from pydantic import TypeAdapter

from heroapi.models import HeroPublic
from heroapi.routes.heroes import hero_response, heroes_response

AWKWARD = [
    ("Deadpond", None, 1),
    ('Quote " and \\ backslash', 0, 2),
    ("Control \x01\x1f\n\t\r\x7f chars", 2**31 - 1, 2**63 - 1),
    ("Unicode é 漢字 🦸 \u2028\u2029", 42, 3),
    ("</script><!--", 7, 4),
    ("", None, 5),
]


@pytest.mark.parametrize("values", AWKWARD)
def test_one_hero_is_rendered_as_heropublic_would(values: tuple[object, ...]) -> None:
    name, age, hero_id = values
    expected = HeroPublic(name=name, age=age, id=hero_id).model_dump_json().encode()
    response = hero_response(values)
    assert response.body == expected
    assert response.media_type == "application/json"


def test_a_page_is_rendered_as_a_list_of_heropublic_would() -> None:
    models = [HeroPublic(name=n, age=a, id=i) for n, a, i in AWKWARD]
    expected = TypeAdapter(list[HeroPublic]).dump_json(models)
    assert heroes_response(AWKWARD).body == expected
    assert heroes_response([]).body == b"[]"


def test_the_rendered_fields_are_heropublics_fields() -> None:
    # hero_json names the fields itself: a field added to HeroPublic must be added there too.
    assert tuple(HeroPublic.model_fields) == ("name", "age", "id")
