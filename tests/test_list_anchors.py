"""Deep offset pages start from page anchors (crud/listing/anchors.py) in every list and every
order: a page read again, or read past an earlier one, is still the page OFFSET gives, before
and after a change. The whole list to compare with is read by cursor, which no anchor serves."""

from collections.abc import Awaitable, Callable
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import bindparam

from heroapi.db import Database
from heroapi.models import hero_table, items_table, users_table
from tests.support import create_user

RunInApp = Callable[[Callable[[Database], Awaitable[Any]]], Any]
ROWS: Final = 1300
LIMIT: Final = 5
# Deep enough for anchors (from offset 1000); each read twice, then past the one before.
OFFSETS: Final = (1100, 1100, 1103, 1250, ROWS - 3)


def _insert(run_in_app: RunInApp, table: Any, rows: list[dict[str, Any]]) -> None:
    async def insert_all(database: Database) -> None:
        statement = table.insert().values({name: bindparam(name) for name in rows[0]})
        async with database.transaction() as connection:
            for row in rows:
                await connection.execute(statement, row)

    run_in_app(insert_all)


def _by_cursor(client: TestClient, path: str) -> list[dict[str, Any]]:
    """Every row of the list at `path` (a query string without `limit`), page by page."""
    rows: list[dict[str, Any]] = []
    following: str | None = f"{path}&limit=100"
    while following is not None:
        response = client.get(following)
        assert response.status_code == 200, response.text
        rows += response.json()
        links = response.headers.get("link", "").split(", ")
        following = next((link[1 : link.index(">")] for link in links if "next" in link), None)
    return rows


def _assert_pages(client: TestClient, path: str, offset_param: str) -> None:
    listed = _by_cursor(client, path)
    for offset in OFFSETS:
        response = client.get(f"{path}&{offset_param}={offset}&limit={LIMIT}")
        assert response.status_code == 200, response.text
        assert response.json() == listed[offset : offset + LIMIT], offset


@pytest.mark.parametrize("order", ["age", "-age", "-age,name", "name", "id"])
def test_heroes_in_any_order(client: TestClient, run_in_app: RunInApp, order: str) -> None:
    heroes = [
        {"name": f"hero {number % 500}", "age": None if number % 7 == 0 else number % 40}
        for number in range(ROWS)
    ]
    _insert(run_in_app, hero_table, [hero | {"secret_name": "s"} for hero in heroes])
    path = f"/heroes/?order={order}"
    _assert_pages(client, path, "offset")
    middle = _by_cursor(client, path)[1101]["id"]
    assert client.delete(f"/heroes/{middle}").status_code == 200
    _assert_pages(client, path, "offset")


@pytest.mark.parametrize("order", ["-title", "id"])
def test_items_of_an_owner(client: TestClient, run_in_app: RunInApp, order: str) -> None:
    owner = create_user(client, "owner@example.com")["id"]
    other = create_user(client, "other@example.com")["id"]
    items = [
        {"title": f"item {number % 300}", "owner_id": owner if number % 3 else other}
        for number in range(2 * ROWS)
    ]
    _insert(run_in_app, items_table, items)
    path = f"/items/?owner_id={owner}&order={order}"
    _assert_pages(client, path, "skip")
    middle = _by_cursor(client, path)[1101]["id"]
    assert client.delete(f"/items/{middle}").status_code == 200
    _assert_pages(client, path, "skip")


def test_users_with_their_items(client: TestClient, run_in_app: RunInApp) -> None:
    users = [
        {
            "email": f"user{number}@example.com",
            "email_key": f"user{number}@example.com",
            "hashed_password": "-",
            "is_superuser": False,
            "security_stamp": f"{number:032x}",
        }
        for number in range(ROWS)
    ]
    _insert(run_in_app, users_table, users)
    listed = _by_cursor(client, "/users/?order=-created_at")
    owners = [user["id"] for user in listed[1095:1110]]
    _insert(run_in_app, items_table, [{"title": "t", "owner_id": owner} for owner in owners])
    _assert_pages(client, "/users/?order=-created_at", "skip")
    page = client.get("/users/?order=-created_at&skip=1100&limit=5").json()
    assert all(user["items"] for user in page)
