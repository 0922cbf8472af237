"""The Users/Items API (the older tutorial's `sql_app`) in auth mode `open`, on every backend."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from heroapi.db import Database
from heroapi.models import items_table, users_table
from tests.support import PASSWORD, create_item, create_user, login, table_rows

# Also through a transaction-pooling PgBouncer (tests/pooler.py).
THROUGH_POOLER = True

RunInApp = Callable[[Callable[[Database], Awaitable[Any]]], Any]


# ------------------------------------------------------------------------------ users


def test_create_user(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    assert user == {
        "email": "deadpool@example.com",
        "id": user["id"],
        "is_active": True,
        "items": [],
    }


def test_password_is_stored_as_an_argon2id_hash(client: TestClient) -> None:
    create_user(client, "deadpool@example.com")
    [row] = table_rows(client, users_table)
    assert row["hashed_password"].startswith("$argon2id$")
    assert PASSWORD not in row["hashed_password"]


def test_password_is_in_no_response(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    headers = login(client, "deadpool@example.com")
    for response in (
        client.get("/users/"),
        client.get(f"/users/{user['id']}"),
        client.get("/users/me", headers=headers),
    ):
        assert response.status_code == 200
        assert PASSWORD not in response.text
        assert "password" not in response.text


def test_duplicate_email_is_400_whatever_its_case(client: TestClient) -> None:
    create_user(client, "Deadpool@Example.com")
    for email in ("Deadpool@Example.com", "deadpool@example.com", "DEADPOOL@EXAMPLE.COM"):
        response = client.post("/users/", json={"email": email, "password": PASSWORD})
        assert response.status_code == 400
        assert response.json() == {"detail": "Email already registered"}
    assert len(table_rows(client, users_table)) == 1


@pytest.mark.parametrize(
    "email",
    [
        "",
        "no-at-sign.example.com",
        "two@@example.com",
        "a@b@example.com",
        "with space@example.com",
        "line\nbreak@example.com",
        "nul\u0000@example.com",
        "x" * 1_000_000 + "@example.com",
        "nobody@localhost",
    ],
)
def test_invalid_emails_are_422(client: TestClient, email: str) -> None:
    response = client.post("/users/", json={"email": email, "password": PASSWORD})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]
    assert len(response.content) < 10_000  # a 1 MB address is not echoed back whole
    assert table_rows(client, users_table) == []


@pytest.mark.parametrize("password", ["hunter2", "x" * 129, "nul\u0000byte-password"])
def test_bad_passwords_are_422_and_never_echoed(client: TestClient, password: str) -> None:
    response = client.post("/users/", json={"email": "a@example.com", "password": password})
    assert response.status_code == 422
    assert password not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


def test_read_users_with_their_items_in_id_order(client: TestClient) -> None:
    first = create_user(client, "first@example.com")
    second = create_user(client, "second@example.com")
    item = create_item(client, second["id"])
    users = client.get("/users/").json()
    assert [user["id"] for user in users] == [first["id"], second["id"]]
    assert users[0]["items"] == []
    assert users[1]["items"] == [item]
    assert client.get("/users/?skip=1&limit=1").json() == [users[1]]
    assert client.get(f"/users/{second['id']}").json() == users[1]


def test_a_deeper_page_of_users_has_its_items_after_the_first_page(client: TestClient) -> None:
    """Reported on SQLite: after `skip=0`, a page at another `skip` showed every user with
    `"items": []` (its items query was the first page's, cached under the same SQL text)."""
    users = [create_user(client, f"user{number}@example.com") for number in range(14)]
    for user in users:
        create_item(client, user["id"], f"for {user['id']}")
    first = client.get("/users/?skip=0&limit=5").json()
    deeper = client.get("/users/?skip=7&limit=5").json()
    assert [[item["owner_id"] for item in user["items"]] for user in first + deeper] == [
        [user["id"]] for user in users[:5] + users[7:12]
    ]


@pytest.mark.parametrize("query", ["skip=-1", "limit=101", "limit=-1", "skip=9223372036854775808"])
def test_bad_paging_is_422(client: TestClient, query: str) -> None:
    assert client.get(f"/users/?{query}").status_code == 422
    assert client.get(f"/items/?{query}").status_code == 422


@pytest.mark.parametrize("user_id", ["0", "-1", "424242", "9223372036854775808"])
def test_missing_user_is_404(client: TestClient, user_id: str) -> None:
    response = client.get(f"/users/{user_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


def test_listing_users_costs_a_constant_number_of_queries(client: TestClient) -> None:
    users = [create_user(client, f"user{number}@example.com") for number in range(6)]
    for user in users:
        create_item(client, user["id"], "one")
        create_item(client, user["id"], "two")

    def statements_for(query: str) -> int:
        database: Database = client.app.state.database  # type: ignore[attr-defined]
        before = database.statements_run
        response = client.get(f"/users/?{query}")
        assert response.status_code == 200
        return database.statements_run - before

    statements_for("limit=1")  # the first page by key also reads the cursors' key, once
    assert statements_for("limit=1") == statements_for("limit=6") == 2
    assert statements_for("skip=0&limit=1") == statements_for("skip=0&limit=6") == 2
    assert all(len(user["items"]) == 2 for user in client.get("/users/").json())


# ------------------------------------------------------------------------------ items


def test_create_and_list_items(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    response = client.post(
        f"/users/{user['id']}/items/", json={"title": "Katana", "description": "Sharp"}
    )
    assert response.status_code == 200
    item = response.json()
    assert item == {
        "title": "Katana",
        "description": "Sharp",
        "id": item["id"],
        "owner_id": user["id"],
    }
    other = create_item(client, user["id"], "Chimichanga")
    assert other["description"] is None
    assert client.get("/items/").json() == [item, other]
    assert client.get("/items/?skip=1").json() == [other]
    assert client.get(f"/items/{item['id']}").json() == item


@pytest.mark.parametrize("user_id", ["424242", "0", "9223372036854775808"])
def test_items_need_an_existing_owner(client: TestClient, user_id: str) -> None:
    response = client.post(f"/users/{user_id}/items/", json={"title": "Orphan"})
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}
    assert table_rows(client, items_table) == []


@pytest.mark.parametrize(
    "body", [{"title": None}, {}, {"title": "x" * 256}, {"title": "ok", "description": "x" * 2001}]
)
def test_bad_items_are_422(client: TestClient, body: dict[str, Any]) -> None:
    user = create_user(client, "deadpool@example.com")
    assert client.post(f"/users/{user['id']}/items/", json=body).status_code == 422
    assert table_rows(client, items_table) == []


def test_deleting_a_user_deletes_their_items(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    keeper = create_user(client, "keeper@example.com")
    create_item(client, user["id"])
    kept = create_item(client, keeper["id"])
    headers = login(client, "deadpool@example.com")
    response = client.delete(f"/users/{user['id']}", headers=headers)
    assert response.status_code == 200
    assert [row["id"] for row in table_rows(client, items_table)] == [kept["id"]]
    assert client.get(f"/users/{user['id']}").status_code == 404
    # Only yourself (or, as a superuser, anyone): another account is a 404.
    create_user(client, "intruder@example.com")
    intruder = login(client, "intruder@example.com")
    assert client.delete(f"/users/{keeper['id']}", headers=intruder).status_code == 404
    assert client.delete(f"/users/{keeper['id']}").status_code == 401
    assert len(table_rows(client, items_table)) == 1
