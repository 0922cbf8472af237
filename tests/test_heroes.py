"""The Hero API's HTTP contract (the tutorial's) and what we do beyond it, on every backend."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, select

from heroapi.crud.listing import anchors
from heroapi.db import Database
from heroapi.models import hero_table

# Also through a transaction-pooling PgBouncer (tests/pooler.py).
THROUGH_POOLER = True

TIMESTAMPS = {"created_at", "updated_at"}
RunInApp = Callable[[Callable[[Database], Awaitable[Any]]], Any]
NOT_FOUND = {"detail": "Hero not found"}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Deadpond", "secret_name": "Dive Wilson"} | fields
    response = client.post("/heroes/", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def stored(run_in_app: RunInApp) -> list[dict[str, Any]]:
    """Every row of the hero table, secret_name included, straight from the database (without
    the database's own timestamps: tests/test_timestamps.py)."""
    columns = [column for column in hero_table.c if column.name not in TIMESTAMPS]

    async def read(database: Database) -> list[dict[str, Any]]:
        async with database.connection() as connection:
            return await connection.fetch_all(select(*columns).order_by(hero_table.c.id), {})

    rows: list[dict[str, Any]] = run_in_app(read)
    return rows


def error_fields(response: Any) -> set[str]:
    return {str(item["loc"][-1]) for item in response.json()["detail"]}


# ------------------------------------------------------------------------------ create


def test_create_returns_public_hero_and_stores_secret(
    client: TestClient, run_in_app: RunInApp
) -> None:
    hero = create(client, name="Spider-Boy", secret_name="Pedro Parqueador", age=None)
    assert set(hero) == {"id", "name", "age"}
    assert hero["name"] == "Spider-Boy"
    assert hero["age"] is None
    assert isinstance(hero["id"], int)
    assert stored(run_in_app) == [
        {"id": hero["id"], "name": "Spider-Boy", "age": None, "secret_name": "Pedro Parqueador"}
    ]


def test_create_ignores_client_id(client: TestClient) -> None:
    first = create(client, id=4242)
    second = create(client, id=first["id"])
    assert first["id"] != 4242
    assert second["id"] != first["id"]


def test_create_age_is_optional_and_kept(client: TestClient) -> None:
    assert create(client)["age"] is None
    assert create(client, age=48)["age"] == 48


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret_name": "x"}, "name"),
        ({"name": "x"}, "secret_name"),
        ({"name": "x" * 256, "secret_name": "x"}, "name"),
        ({"name": "x", "secret_name": "x" * 256}, "secret_name"),
        ({"name": "x", "secret_name": "x", "age": 2**64}, "age"),
        ({"name": "x", "secret_name": "x", "age": 2**31}, "age"),
        ({"name": "x", "secret_name": "x", "age": -1}, "age"),
        ({"name": "x", "secret_name": "x", "age": "old"}, "age"),
        ({"name": "nul\u0000byte", "secret_name": "x"}, "name"),
        ({"name": 12, "secret_name": "x"}, "name"),
    ],
)
def test_create_rejects_bad_fields_and_stores_nothing(
    client: TestClient, run_in_app: RunInApp, body: dict[str, Any], field: str
) -> None:
    response = client.post("/heroes/", json=body)
    assert response.status_code == 422
    assert field in error_fields(response)
    assert stored(run_in_app) == []


def test_create_rejects_lone_surrogate(client: TestClient, run_in_app: RunInApp) -> None:
    raw = b'{"name": "bad \\ud800 half", "secret_name": "x"}'
    response = client.post("/heroes/", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert error_fields(response) == {"name"}
    assert stored(run_in_app) == []


def test_longest_names_and_non_ascii_round_trip(client: TestClient, run_in_app: RunInApp) -> None:
    name = "🦸" * 255  # four UTF-8 bytes each: utf8mb4 on MariaDB
    hero = create(client, name=name, secret_name="é" * 255, age=2**31 - 1)
    assert client.get(f"/heroes/{hero['id']}").json() == {
        "id": hero["id"],
        "name": name,
        "age": 2**31 - 1,
    }
    assert stored(run_in_app)[0]["secret_name"] == "é" * 255


def test_validation_errors_never_echo_secret_name(client: TestClient) -> None:
    secret = "Tony Stark's real " + "x" * 300
    response = client.post("/heroes/", json={"name": "x", "secret_name": secret})
    assert response.status_code == 422
    assert "Tony Stark" not in response.text
    response = client.post("/heroes/", json={"secret_name": "Tony Stark"})
    assert response.status_code == 422
    assert "Tony Stark" not in response.text


# ------------------------------------------------------------------------------ list


def test_list_is_in_id_order_with_offset_and_limit(client: TestClient) -> None:
    ids = [create(client, name=f"hero {number}")["id"] for number in range(5)]
    assert [hero["id"] for hero in client.get("/heroes/").json()] == ids
    assert [hero["id"] for hero in client.get("/heroes/?offset=1&limit=2").json()] == ids[1:3]
    assert client.get("/heroes/?offset=5").json() == []
    assert client.get("/heroes/?limit=0").json() == []
    assert client.get("/heroes/?offset=9223372036854775807").json() == []
    assert all(set(hero) == {"id", "name", "age"} for hero in client.get("/heroes/").json())


def test_list_default_and_maximum_limit_is_100(client: TestClient) -> None:
    for number in range(101):
        create(client, name=f"hero {number}")
    assert len(client.get("/heroes/").json()) == 100
    assert len(client.get("/heroes/?limit=100").json()) == 100
    assert len(client.get("/heroes/?offset=100").json()) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=10000000000000000000000000000", "limit"),
        ("offset=-1", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("offset=1.5", "offset"),
        ("limit=ten", "limit"),
        ("offset=", "offset"),
    ],
)
def test_list_rejects_bad_paging(client: TestClient, query: str, field: str) -> None:
    response = client.get(f"/heroes/?{query}")
    assert response.status_code == 422
    assert error_fields(response) == {field}


# ------------------------------------------------------------------------------ read


def test_read_one(client: TestClient) -> None:
    hero = create(client, name="Rusty-Man", secret_name="Tommy Sharp", age=48)
    response = client.get(f"/heroes/{hero['id']}")
    assert response.status_code == 200
    assert response.json() == {"id": hero["id"], "name": "Rusty-Man", "age": 48}


@pytest.mark.parametrize(
    "hero_id", ["0", "-1", "999999", "9223372036854775807", "9223372036854775808", "1" + "0" * 30]
)
def test_missing_or_impossible_ids_are_404(client: TestClient, hero_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        body = {"name": "x"} if method == "PATCH" else None
        response = client.request(method, f"/heroes/{hero_id}", json=body)
        assert response.status_code == 404, (method, response.text)
        assert response.json() == NOT_FOUND


@pytest.mark.parametrize("hero_id", ["abc", "1.5", "1e3", "%20"])
def test_non_integer_ids_are_422(client: TestClient, hero_id: str) -> None:
    response = client.get(f"/heroes/{hero_id}")
    assert response.status_code == 422
    assert error_fields(response) == {"hero_id"}


# ------------------------------------------------------------------------------ update


def test_patch_changes_only_the_fields_sent(client: TestClient, run_in_app: RunInApp) -> None:
    hero = create(client, name="Deadpond", secret_name="Dive Wilson", age=30)
    other = create(client, name="Other", secret_name="Untouched", age=1)
    response = client.patch(f"/heroes/{hero['id']}", json={"age": 31})
    assert response.status_code == 200
    assert response.json() == {"id": hero["id"], "name": "Deadpond", "age": 31}
    response = client.patch(f"/heroes/{hero['id']}", json={"secret_name": "Wade"})
    assert response.json() == {"id": hero["id"], "name": "Deadpond", "age": 31}
    rows = stored(run_in_app)
    assert rows[0] == {"id": hero["id"], "name": "Deadpond", "age": 31, "secret_name": "Wade"}
    assert rows[1] == {"id": other["id"], "name": "Other", "age": 1, "secret_name": "Untouched"}


def test_patch_null_age_clears_it(client: TestClient) -> None:
    hero = create(client, age=30)
    response = client.patch(f"/heroes/{hero['id']}", json={"age": None})
    assert response.json()["age"] is None
    assert client.get(f"/heroes/{hero['id']}").json()["age"] is None


def test_patch_empty_body_changes_nothing(client: TestClient) -> None:
    hero = create(client, age=30)
    response = client.patch(f"/heroes/{hero['id']}", json={})
    assert response.status_code == 200
    assert response.json() == hero


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"secret_name": None}, "secret_name"),
        ({"name": "x" * 256}, "name"),
        ({"age": 2**64}, "age"),
        ({"age": 1.5}, "age"),
    ],
)
def test_patch_rejects_bad_fields_and_changes_nothing(
    client: TestClient, run_in_app: RunInApp, body: dict[str, Any], field: str
) -> None:
    hero = create(client, age=30)
    before = stored(run_in_app)
    response = client.patch(f"/heroes/{hero['id']}", json={"age": 99} | body)
    assert response.status_code == 422
    assert field in error_fields(response)
    assert stored(run_in_app) == before


# ------------------------------------------------------------------------------ delete


def test_delete(client: TestClient, run_in_app: RunInApp) -> None:
    hero = create(client)
    keep = create(client, name="Keep")
    response = client.delete(f"/heroes/{hero['id']}")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert client.get(f"/heroes/{hero['id']}").json() == NOT_FOUND
    assert client.delete(f"/heroes/{hero['id']}").status_code == 404
    assert [row["id"] for row in stored(run_in_app)] == [keep["id"]]


def test_secret_name_is_never_in_a_response(client: TestClient) -> None:
    hero = create(client, secret_name="Very Secret Identity")
    responses = [
        client.get("/heroes/"),
        client.get(f"/heroes/{hero['id']}"),
        client.patch(f"/heroes/{hero['id']}", json={"age": 3}),
        client.patch(f"/heroes/{hero['id']}", json={"secret_name": "Very Secret Too"}),
    ]
    for response in responses:
        assert response.status_code == 200
        assert "secret" not in response.text.lower()


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"name": "x", "secret_name": "Tony Stark"}', "text/plain"),
        ("name=x&secret_name=Tony+Stark", "application/x-www-form-urlencoded"),
        ('"secret_name: Tony Stark"', "application/json"),
        ('{"name": "x", "secret_name": "Tony Stark", "age": NaN}', "application/json"),
        ('{"name": "x", "secret_name": "Tony Stark"', "application/json"),
    ],
)
def test_bodies_that_are_not_objects_are_422_without_echo(
    client: TestClient, run_in_app: RunInApp, content: str, content_type: str
) -> None:
    response = client.post("/heroes/", content=content, headers={"content-type": content_type})
    assert response.status_code == 422
    assert "Tony Stark" not in response.text
    assert response.json()["detail"]
    assert stored(run_in_app) == []


def fill(run_in_app: RunInApp, count: int) -> None:
    """`count` heroes, stored in one transaction."""

    async def insert_all(database: Database) -> None:
        insert = hero_table.insert().values(name=bindparam("name"), secret_name="s")
        async with database.transaction() as connection:
            for number in range(count):
                await connection.execute(insert, {"name": f"hero {number}"})

    run_in_app(insert_all)


def test_deep_pages_follow_every_change(client: TestClient, run_in_app: RunInApp) -> None:
    """Past offset 1000, pages may start from where an earlier page started (page anchors):
    whatever changes the table in between, a page is what OFFSET would give."""

    fill(run_in_app, 1300)
    every = [hero["id"] for hero in stored(run_in_app)]

    def page(offset: int, limit: int = 3) -> list[int]:
        response = client.get("/heroes/", params={"offset": offset, "limit": limit})
        assert response.status_code == 200
        return [hero["id"] for hero in response.json()]

    assert page(1100) == every[1100:1103]
    assert page(1100) == every[1100:1103]
    assert page(1150) == every[1150:1153]
    assert client.delete(f"/heroes/{every[5]}").status_code == 200
    del every[5]
    assert page(1100) == every[1100:1103]
    assert page(1150) == every[1150:1153]
    every.append(create(client)["id"])
    assert page(1100) == every[1100:1103]
    assert page(len(every) - 2, 5) == every[-2:]
    assert page(5000) == []


def test_deep_pages_learn_where_they_start(client: TestClient, run_in_app: RunInApp) -> None:
    """A deep page remembers the id it starts at, so the next read near it skips no offset
    (MySQL cannot tell whether the data changed, so it never does)."""

    fill(run_in_app, 1200)
    every = [hero["id"] for hero in stored(run_in_app)]
    response = client.get("/heroes/", params={"offset": 1100, "limit": 2})
    assert [hero["id"] for hero in response.json()] == every[1100:1102]

    async def learnt(database: Database) -> list[tuple[int, int]]:
        known = anchors._anchors.get(database)
        if known is None:
            return []
        return [(offset, key[-1]) for (_, offset), key in known._keys.items()]

    database: Database = client.app.state.database  # type: ignore[attr-defined]
    expected = [] if database.url.backend == "mysql" else [(1100, every[1100])]
    assert run_in_app(learnt) == expected
