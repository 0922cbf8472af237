"""Changing and deleting an item (PATCH and DELETE /items/{item_id}), in both auth modes, on every
backend: only the fields sent change, bad input is a 422 or a 404 exactly as for GET, and in
`required` mode another's item is a 404, like a missing one, unless you are a superuser."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from heroapi.models import items_table
from tests.support import (
    PASSWORD,
    assert_401,
    create_item,
    create_user,
    login,
    make_superuser,
    table_rows,
)

NOT_FOUND = {"detail": "Item not found"}


def stored_items(client: TestClient) -> list[dict[str, Any]]:
    return table_rows(client, items_table)


# ------------------------------------------------------------------------------ open mode


def test_patch_changes_only_the_fields_sent(client: TestClient) -> None:
    owner = create_user(client, "deadpool@example.com")
    item = create_item(client, owner["id"])
    other = create_item(client, owner["id"], "Bag of Holding")

    response = client.patch(f"/items/{item['id']}", json={"description": "Interdimensional"})
    assert response.status_code == 200, response.text
    described = item | {"description": "Interdimensional"}
    assert response.json() == described

    response = client.patch(f"/items/{item['id']}", json={"title": "Portal Gun 2"})
    assert response.json() == described | {"title": "Portal Gun 2"}
    # `description: null` clears it; setting a value it already has is no error either.
    response = client.patch(
        f"/items/{item['id']}", json={"title": "Portal Gun 2", "description": None}
    )
    assert response.status_code == 200, response.text
    assert response.json() == item | {"title": "Portal Gun 2"}
    assert client.get(f"/items/{item['id']}").json() == item | {"title": "Portal Gun 2"}
    assert client.get(f"/items/{other['id']}").json() == other


def test_patch_with_an_empty_body_changes_nothing(client: TestClient) -> None:
    owner = create_user(client, "deadpool@example.com")
    item = create_item(client, owner["id"])
    response = client.patch(f"/items/{item['id']}", json={})
    assert response.status_code == 200, response.text
    assert response.json() == item
    assert client.patch("/items/999999", json={}).json() == NOT_FOUND


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "nul\u0000byte"}, "title"),
        ({"title": 42}, "title"),
        ({"description": "x" * 2001}, "description"),
        ({"description": "lone \ud800 surrogate"}, "description"),
    ],
    ids=["title-null", "title-too-long", "title-nul", "title-not-text", "long-text", "surrogate"],
)
def test_patch_validates_as_create_does(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    owner = create_user(client, "deadpool@example.com")
    item = create_item(client, owner["id"])
    # json.dumps escapes a lone surrogate (`\ud800`), as a client in another language may send it.
    headers = {"Content-Type": "application/json"}
    response = client.patch(f"/items/{item['id']}", content=json.dumps(body), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert client.get(f"/items/{item['id']}").json() == item


@pytest.mark.parametrize(
    "content",
    [b"{", b"not json", b"[]", b"null", b'"title"', b"\xff\xfe"],
    ids=["truncated", "not-json", "list", "null", "string", "not-utf8"],
)
def test_patch_with_a_bad_body_is_422(client: TestClient, content: bytes) -> None:
    owner = create_user(client, "deadpool@example.com")
    item = create_item(client, owner["id"])
    response = client.patch(
        f"/items/{item['id']}", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert client.get(f"/items/{item['id']}").json() == item


@pytest.mark.parametrize(
    ("item_id", "status_code"),
    [("999999", 404), ("0", 404), ("-1", 404), (str(2**63), 404), ("abc", 422), ("1.5", 422)],
)
def test_bad_ids_are_answered_as_get_answers_them(
    client: TestClient, item_id: str, status_code: int
) -> None:
    owner = create_user(client, "deadpool@example.com")
    create_item(client, owner["id"])
    read = client.get(f"/items/{item_id}")
    assert read.status_code == status_code
    for response in (
        client.patch(f"/items/{item_id}", json={"title": "x"}),
        client.delete(f"/items/{item_id}"),
    ):
        assert response.status_code == status_code, response.text
        if status_code == 404:
            assert response.json() == NOT_FOUND
        else:
            assert response.json()["detail"][0]["loc"] == read.json()["detail"][0]["loc"]
    assert len(stored_items(client)) == 1


def test_delete_removes_the_item_once(client: TestClient) -> None:
    owner = create_user(client, "deadpool@example.com")
    item = create_item(client, owner["id"])
    kept = create_item(client, owner["id"], "Bag of Holding")

    response = client.delete(f"/items/{item['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    assert client.get(f"/items/{item['id']}").status_code == 404
    assert client.patch(f"/items/{item['id']}", json={"title": "back"}).status_code == 404
    again = client.delete(f"/items/{item['id']}")
    assert again.status_code == 404
    assert again.json() == NOT_FOUND
    assert [row["id"] for row in stored_items(client)] == [kept["id"]]
    assert client.get(f"/users/{owner['id']}").json()["items"] == [kept]


def test_open_mode_lets_anyone_write_any_item(client: TestClient) -> None:
    # As the tutorial's item routes: no token asked for, and none looked at (not even another's).
    owner = create_user(client, "deadpool@example.com")
    create_user(client, "cable@example.com")
    stranger = login(client, "cable@example.com")
    item = create_item(client, owner["id"])
    response = client.patch(f"/items/{item['id']}", json={"title": "Cable's"}, headers=stranger)
    assert response.json() == item | {"title": "Cable's"}
    assert client.delete(f"/items/{item['id']}", headers=stranger).json() == {"ok": True}


# ------------------------------------------------------------------------------ required mode


def test_required_mode_only_the_owner_or_a_superuser(auth_client: TestClient) -> None:
    client = auth_client
    admin = make_superuser(client, "admin@example.com")
    ids: dict[str, int] = {}
    for name in ("alice", "bob"):
        body = {"email": f"{name}@example.com", "password": PASSWORD}
        ids[name] = client.post("/users/", json=body, headers=admin).json()["id"]
    alice, bob = login(client, "alice@example.com"), login(client, "bob@example.com")
    made = client.post(f"/users/{ids['alice']}/items/", json={"title": "Alice's"}, headers=alice)
    item = made.json()
    one = f"/items/{item['id']}"

    assert_401(client.patch(one, json={"title": "anonymous"}))
    assert_401(client.delete(one))
    # Bob is told what he would be told of a missing item, and nothing is changed.
    for response in (
        client.patch(one, json={"title": "Bob's now"}, headers=bob),
        client.patch(one, json={}, headers=bob),
        client.delete(one, headers=bob),
    ):
        assert response.status_code == 404, response.text
        assert response.json() == NOT_FOUND
    assert client.get(one, headers=alice).json() == item

    renamed = client.patch(one, json={"title": "Alice's own"}, headers=alice)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == item | {"title": "Alice's own"}
    by_admin = client.patch(one, json={"description": "seen by admin"}, headers=admin)
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json() == item | {"title": "Alice's own", "description": "seen by admin"}
    assert client.patch(f"/items/{item['id'] + 1000}", json={}, headers=alice).status_code == 404

    assert client.delete(one, headers=admin).json() == {"ok": True}
    assert client.get(one, headers=alice).status_code == 404
    assert client.delete(one, headers=alice).status_code == 404
    assert stored_items(client) == []


def test_required_mode_owner_deletes_their_own(auth_client: TestClient) -> None:
    client = auth_client
    admin = make_superuser(client, "admin@example.com")
    body = {"email": "alice@example.com", "password": PASSWORD}
    alice_id = client.post("/users/", json=body, headers=admin).json()["id"]
    alice = login(client, "alice@example.com")
    item = client.post(f"/users/{alice_id}/items/", json={"title": "x"}, headers=alice).json()
    assert client.delete(f"/items/{item['id']}", headers=alice).json() == {"ok": True}
    assert client.delete(f"/items/{item['id']}", headers=alice).status_code == 404


# ------------------------------------------------------------------------------ OpenAPI


def test_openapi_documents_the_item_writes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    update = document["components"]["schemas"]["ItemUpdate"]
    assert set(update["properties"]) == {"title", "description"}
    assert "required" not in update
    assert update["properties"]["title"]["anyOf"][0]["maxLength"] == 255
    patch = document["paths"]["/items/{item_id}"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemUpdate"
    }
    assert patch["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    for method in ("get", "patch", "delete"):
        not_found = document["paths"]["/items/{item_id}"][method]["responses"]["404"]
        assert not_found["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorDetail"
        }
    assert "security" not in patch  # open mode: anyone, as the tutorial's item routes
