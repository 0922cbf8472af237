"""What the lists (issue 17) refuse, on every backend: a filter the list does not have, a value
a filter cannot take, an order that is not one, a cursor it did not make for this request: each
a 422 naming the query parameter, as FastAPI's own validation gives; never a 500. Parameters
that are no filter's are ignored, as the tutorial's app ignores them."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from heroapi import crud
from tests.support import (
    Params,
    add_heroes,
    add_items,
    add_users,
    get_ok,
    link_query,
    links,
    listed,
    row_ids,
)


def assert_refused(response: Response, param: str) -> None:
    """A 422 naming the query parameter, as FastAPI's own validation gives."""
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", param], response.text


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        # An operator the field does not have.
        ("/heroes/", {"age_gt": "3"}, "age_gt"),
        ("/heroes/", {"name_suffix": "x"}, "name_suffix"),
        ("/heroes/", {"name_null": "true"}, "name_null"),
        ("/items/", {"title": "Portal Gun"}, "title"),
        ("/heroes/", {"created_at": "2020-01-01T00:00:00"}, "created_at"),
        ("/users/", {"updated": "2020-01-01T00:00:00"}, "updated"),
        ("/users/", {"email_prefix": "a"}, "email_prefix"),
        ("/items/", {"owner_id_gte": "1"}, "owner_id_gte"),
        # A value the filter cannot take.
        ("/heroes/", {"age": "abc"}, "age"),
        ("/heroes/", {"age": "1.5"}, "age"),
        ("/heroes/", {"age_null": "maybe"}, "age_null"),
        ("/heroes/", {"created_after": "yesterday"}, "created_after"),
        ("/items/", {"updated_before": "2020-13-01T00:00:00"}, "updated_before"),
        ("/heroes/", {"name": "nul\x00"}, "name"),
        ("/heroes/", {"name_prefix": "\x00"}, "name_prefix"),
        ("/heroes/", {"name": "x" * 256}, "name"),
        ("/heroes/", {"age_gte": "99999999999"}, "age_gte"),
        ("/heroes/", {"age_lte": "-99999999999"}, "age_lte"),
        ("/items/", {"owner_id": str(2**63)}, "owner_id"),
        ("/items/", {"title_prefix": "x" * 256}, "title_prefix"),
        ("/users/", {"is_active": "perhaps"}, "is_active"),
        # An order that is not one.
        ("/heroes/", {"order": "power"}, "order"),
        ("/heroes/", {"order": "secret_name"}, "order"),
        ("/users/", {"order": "is_active"}, "order"),
        ("/users/", {"order": "hashed_password"}, "order"),
        ("/items/", {"order": "description"}, "order"),
        ("/heroes/", {"order": "age,,name"}, "order"),
        ("/heroes/", {"order": "age,"}, "order"),
        ("/heroes/", {"order": "-"}, "order"),
        ("/heroes/", {"order": "age,-age"}, "order"),
        ("/heroes/", {"order": "name,age,name"}, "order"),
    ],
)
def test_refused_with_a_422_naming_the_parameter(
    client: TestClient, path: str, params: Params, param: str
) -> None:
    assert_refused(client.get(path, params=params), param)
    # The same through the other paging parameters, and with a valid filter beside it.
    offset = "offset" if path == "/heroes/" else "skip"
    assert_refused(client.get(path, params={**params, offset: 0, "limit": 5}), param)


def test_unrelated_parameters_are_ignored(client: TestClient) -> None:
    ids = add_heroes(client, [("Deadpond", None), ("Rusty-Man", 48)])
    for params in ({"foo": "1"}, {"_": "123"}, {"secret_name": "x"}, {"Age": "1"}):
        assert listed(client, "/heroes/", params) == ids
        assert listed(client, "/heroes/", {**params, "offset": 0, "limit": 10}) == ids
        assert listed(client, "/heroes/", {**params, "age_null": "true"}) == ids[:1]
        assert listed(client, "/users/", params) == []
        assert listed(client, "/items/", params) == []


# Raw (percent-encoded) query values, each sent for every parameter a list takes.
ODD_VALUES = [
    "",
    "%20",
    "-1",
    "0",
    "1e3",
    "9" * 30,
    "%00",
    "%ED%A0%80",  # a lone surrogate, in UTF-8's form
    "%FF",
    "%F4%8F%BF%BF",
    "true",
    "null",
    "x" * 3000,
    "2020-02-30T00:00:00",
    "0001-01-01T00:00:00%2B14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.999999",
    "1969-12-31T23:59:59Z",
    "-age,name",
    "%2C",
]


def test_no_parameter_value_gives_a_500(client: TestClient) -> None:
    """Whatever a parameter holds: an answer, or a 422 naming it."""
    owner = add_users(client, ["odd@example.com"])[0]
    add_items(client, owner, ["Portal Gun"])
    add_heroes(client, [("Deadpond", None), ("Rusty-Man", 48)])
    params = {
        "/heroes/": [*crud.HEROES.filters, "order", "cursor", "offset", "limit"],
        "/users/": [*crud.USERS.filters, "order", "cursor", "skip", "limit"],
        "/items/": [*crud.ITEMS.filters, "order", "cursor", "skip", "limit"],
    }
    for path, names in params.items():
        for name in names:
            for value in ODD_VALUES:
                response = client.get(f"{path}?{name}={value}")
                assert response.status_code in (200, 422), (path, name, value, response.text)
                if response.status_code == 422:
                    locations = [error["loc"] for error in response.json()["detail"]]
                    assert ["query", name] in locations, (path, name, value, response.text)


# ---------------------------------------------------------------------------- cursors


def a_cursor(client: TestClient, path: str, params: Params) -> str:
    response = get_ok(client, path, params)
    return link_query(links(response)["next"])["cursor"][0]


def test_cursors_that_are_refused(client: TestClient) -> None:
    add_heroes(client, [(f"Hero {number}", number) for number in range(4)])
    owner = add_users(client, ["owner@example.com", "other@example.com"])[0]
    add_items(client, owner, ["One", "Two", "Three"])
    cursor = a_cursor(client, "/heroes/", {"limit": 1})
    ordered_cursor = a_cursor(client, "/heroes/", {"limit": 1, "order": "-age,name"})
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    items_cursor = a_cursor(client, "/items/", {"limit": 1})
    refused: list[tuple[str, dict[str, Any]]] = [
        ("/heroes/", {"cursor": "abc"}),
        ("/heroes/", {"cursor": "not a cursor!"}),
        ("/heroes/", {"cursor": ""}),
        ("/heroes/", {"cursor": "A" * 60}),
        ("/heroes/", {"cursor": flipped}),
        ("/heroes/", {"cursor": cursor[:-2]}),
        ("/heroes/", {"cursor": cursor + "AA"}),
        ("/items/", {"cursor": cursor}),  # another list's
        ("/users/", {"cursor": cursor}),
        ("/heroes/", {"cursor": items_cursor}),
        ("/heroes/", {"cursor": cursor, "order": "-age"}),  # another order than its own
        ("/heroes/", {"cursor": ordered_cursor, "order": "age,name"}),
        ("/heroes/", {"cursor": ordered_cursor, "order": "-age"}),
        ("/heroes/", {"cursor": cursor, "offset": 0}),  # two ways to say where to start
        ("/heroes/", {"cursor": cursor, "offset": 2}),
        ("/items/", {"cursor": items_cursor, "skip": 0}),
        ("/heroes/", {"cursor": "A" * 3000}),
    ]
    for path, params in refused:
        assert_refused(client.get(path, params=params), "cursor")
    # What is accepted: its own list, with its own order or none.
    assert row_ids(get_ok(client, "/heroes/", {"cursor": cursor, "limit": 1})) == [
        listed(client, "/heroes/", {})[1]
    ]
    assert get_ok(client, "/heroes/", {"cursor": ordered_cursor, "order": "-age,name"}).json()
    assert get_ok(client, "/items/", {"cursor": items_cursor}).json()
