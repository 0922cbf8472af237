"""Hostile input on every endpoint that takes it: a deliberate 4xx with a JSON body, never a 5xx,
and nothing stored or changed. On every backend."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from heroapi.models import hero_table, items_table, users_table
from tests.support import PASSWORD, create_user, login, table_rows

SECRET = "Tony Stark's secret"
MEGABYTE = "x" * 1_000_000

# Bodies no JSON endpoint accepts: (raw bytes, content type).
BAD_BODIES: list[tuple[bytes, str]] = [
    (b'{"name": ', "application/json"),  # malformed
    (b"[1, 2]", "application/json"),  # not an object
    (b'"a string"', "application/json"),
    (b"42", "application/json"),
    (b"null", "application/json"),
    (b"", "application/json"),
    (b'{"name": "x", "secret_name": "y"}', "text/plain"),  # wrong content type
    (b"name=x&secret_name=y", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00garbage", "application/json"),  # not UTF-8
]

# Field values no text or number column takes.
BAD_TEXT: list[Any] = [None, 12, 1.5, True, [], {}, "nul\u0000byte", "x" * 256, MEGABYTE]
BAD_NUMBERS: list[str] = ["NaN", "Infinity", "-Infinity", "1e400", str(2**64), str(-(2**63) - 1)]
BAD_IDS = ["0", "-1", str(2**63), str(10**30), "abc", "1.5", "1e3", "%00", "9" * 400]


def snapshot(client: TestClient) -> list[list[dict[str, Any]]]:
    return [table_rows(client, table) for table in (hero_table, users_table, items_table)]


def assert_rejected(
    response: Any, *, allowed: tuple[int, ...] = (400, 401, 403, 404, 413, 422)
) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "detail" in response.json()
    assert SECRET not in response.text
    assert PASSWORD not in response.text
    assert len(response.content) < 20_000  # nothing big is echoed back


@pytest.fixture
def world(client: TestClient) -> dict[str, Any]:
    """A hero, a user with an item, and that user's token."""
    hero = client.post("/heroes/", json={"name": "Hero", "secret_name": SECRET, "age": 3}).json()
    user = create_user(client, "owner@example.com")
    item = client.post(f"/users/{user['id']}/items/", json={"title": "Item"}).json()
    return {"hero": hero, "user": user, "item": item, "token": login(client, "owner@example.com")}


def json_endpoints(world: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, a valid body) for every endpoint that takes a JSON body."""
    hero_id, user_id = world["hero"]["id"], world["user"]["id"]
    return [
        ("POST", "/heroes/", {"name": "New", "secret_name": SECRET, "age": 1}),
        ("PATCH", f"/heroes/{hero_id}", {"name": "Changed", "age": 4}),
        ("POST", "/users/", {"email": "new@example.com", "password": PASSWORD}),
        ("POST", f"/users/{user_id}/items/", {"title": "New", "description": "d"}),
        ("PATCH", "/users/me", {"email": "changed@example.com"}),
        ("POST", "/users/me/password", {"current_password": PASSWORD, "new_password": "x" * 12}),
    ]


def test_bad_bodies(client: TestClient, world: dict[str, Any]) -> None:
    before = snapshot(client)
    for method, path, _ in json_endpoints(world):
        for content, content_type in BAD_BODIES:
            response = client.request(
                method,
                path,
                content=content,
                headers={"content-type": content_type} | world["token"],
            )
            assert_rejected(response)
    assert snapshot(client) == before


def test_bad_field_values(client: TestClient, world: dict[str, Any]) -> None:
    before = snapshot(client)
    for method, path, valid in json_endpoints(world):
        for field in valid:
            for value in BAD_TEXT if field != "age" else [*BAD_TEXT[1:], -1]:
                if field == "age" and value in (12, True):
                    continue  # ages are numbers
                if field == "description" and value is None:
                    continue  # an item's description may be null
                if field == "description" and value == "x" * 256:
                    value = "x" * 2001
                body = valid | {field: value}
                assert_rejected(client.request(method, path, json=body, headers=world["token"]))
    assert snapshot(client) == before


def test_bad_number_tokens(client: TestClient, world: dict[str, Any]) -> None:
    before = snapshot(client)
    hero_id = world["hero"]["id"]
    for token in BAD_NUMBERS:
        for method, path in (("POST", "/heroes/"), ("PATCH", f"/heroes/{hero_id}")):
            raw = f'{{"name": "n", "secret_name": "s", "age": {token}}}'.encode()
            response = client.request(
                method, path, content=raw, headers={"content-type": "application/json"}
            )
            assert_rejected(response)
    assert snapshot(client) == before


def test_lone_surrogates(client: TestClient, world: dict[str, Any]) -> None:
    before = snapshot(client)
    for method, path, valid in json_endpoints(world):
        for field in valid:
            if field == "age":
                continue
            raw = (
                "{"
                + ", ".join(
                    f'"{name}": "\\ud800{name}"' if name == field else f'"{name}": "{value}"'
                    for name, value in valid.items()
                    if name != "age"
                )
                + "}"
            ).encode()
            response = client.request(
                method,
                path,
                content=raw,
                headers={"content-type": "application/json"} | world["token"],
            )
            assert_rejected(response)
    assert snapshot(client) == before


def test_bodies_over_the_size_limit_are_413(client: TestClient, world: dict[str, Any]) -> None:
    before = snapshot(client)
    huge = {"name": "x", "secret_name": "x" * (1024 * 1024 + 1)}
    for method, path, _ in json_endpoints(world):
        response = client.request(method, path, json=huge, headers=world["token"])
        assert_rejected(response, allowed=(413,))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"name": "x", "secret_name": "'
        for _ in range(12):
            yield b"x" * 100_000
        yield b'"}'

    streamed = client.post(
        "/heroes/", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_rejected(streamed, allowed=(413,))
    assert snapshot(client) == before


def test_bad_ids_on_every_path(client: TestClient, world: dict[str, Any]) -> None:
    before = snapshot(client)
    for hero_id in BAD_IDS:
        for method in ("GET", "PATCH", "DELETE"):
            body = {"name": "x"} if method == "PATCH" else None
            assert_rejected(client.request(method, f"/heroes/{hero_id}", json=body))
        assert_rejected(client.get(f"/users/{hero_id}"))
        assert_rejected(client.get(f"/items/{hero_id}"))
        assert_rejected(client.post(f"/users/{hero_id}/items/", json={"title": "x"}))
        assert_rejected(
            client.patch(f"/users/{hero_id}", json={"is_active": False}, headers=world["token"])
        )
        assert_rejected(client.delete(f"/users/{hero_id}", headers=world["token"]))
    assert snapshot(client) == before


def test_bad_paging_everywhere(client: TestClient, world: dict[str, Any]) -> None:
    for path, start in (("/heroes/", "offset"), ("/users/", "skip"), ("/items/", "skip")):
        for query in (
            f"{start}=-1",
            f"{start}={2**63}",
            f"{start}=1e3",
            f"{start}=",
            "limit=-1",
            "limit=101",
            f"limit={10**30}",
            "limit=NaN",
        ):
            assert_rejected(client.get(f"{path}?{query}"))
        assert client.get(f"{path}?{start}=1000000").json() == []
        assert len(client.get(f"{path}?limit=100").json()) <= 100


def test_login_form_abuse(client: TestClient, world: dict[str, Any]) -> None:
    for data in (
        {},
        {"username": "owner@example.com"},
        {"password": PASSWORD},
        {"username": "owner@example.com\u0000", "password": PASSWORD},
        {"username": MEGABYTE, "password": PASSWORD},
        {"username": "owner@example.com", "password": MEGABYTE},
    ):
        response = client.post("/login/access-token", data=data)
        assert_rejected(response, allowed=(400, 413, 422))
    raw = client.post(
        "/login/access-token", content=b"{}", headers={"content-type": "application/json"}
    )
    assert_rejected(raw)
