"""What the test modules share: the tutorial's example hero, accounts made and logged in through
the API, rows read and made directly, what a list answers (ids, `Link` headers), and what a
request costs the server's CPU."""

import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Connection, select, text
from starlette.types import ASGIApp, Receive, Scope, Send

from heroapi import crud
from heroapi.config import parse_database_url
from heroapi.db import Database
from heroapi.models import ItemCreate, users_table
from tests.conftest import app_database
from tests.databases import run_sync

HERO = {"name": "Deadpond", "secret_name": "Dive Wilson"}
PASSWORD = "chimichangas4life"

# ---------------------------------------------------------------------------- accounts


def create_user(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/users/", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


def create_item(client: TestClient, user_id: int, title: str = "Portal Gun") -> dict[str, Any]:
    response = client.post(f"/users/{user_id}/items/", json={"title": title})
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item


def token_of(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Log in; the token answer's body."""
    response = client.post("/login/access-token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in; the Authorization header for the token."""
    return bearer(token_of(client, email, password)["access_token"])


def make_superuser(client: TestClient, email: str) -> dict[str, str]:
    """Create a superuser the way an operator would (no API for it), and log in."""

    async def create(database: Database) -> None:
        from heroapi.accounts import create_superuser

        assert await create_superuser(database, email, PASSWORD, client.app.state.passwords)  # type: ignore[attr-defined]

    app_database(client, create)
    return login(client, email)


def assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"


def table_rows(client: TestClient, table: Any) -> list[dict[str, Any]]:
    async def read(database: Database) -> list[dict[str, Any]]:
        async with database.connection() as connection:
            return await connection.fetch_all(select(table).order_by(table.c.id), {})

    rows: list[dict[str, Any]] = app_database(client, read)
    return rows


def stored_hash(client: TestClient, email: str) -> str:
    [row] = [row for row in table_rows(client, users_table) if row["email"] == email]
    hashed: str = row["hashed_password"]
    return hashed


# ------------------------------------------------------------------------------- lists

Params = Mapping[str, str | int]
# Moments the time filters are tested around, set as rows' timestamps (set_times).
T0 = datetime(2020, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
LINK = re.compile(r'<([^>]*)>;\s*rel="([^"]+)"')


def add_heroes(client: TestClient, heroes: Sequence[tuple[str, int | None]]) -> list[int]:
    """Create heroes through the API; their ids, in the same order."""
    ids = []
    for name, age in heroes:
        response = client.post("/heroes/", json={"name": name, "secret_name": "x", "age": age})
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


def add_users(client: TestClient, emails: Sequence[str]) -> list[int]:
    """Create accounts directly through crud: the API would hash a password for each (slow)."""

    async def create(database: Database) -> list[int]:
        return [
            (await crud.create_user(database=database, email=email, hashed_password="unused"))["id"]
            for email in emails
        ]

    ids: list[int] = app_database(client, create)
    return ids


def add_items(client: TestClient, owner_id: int, titles: Sequence[str]) -> list[int]:
    async def create(database: Database) -> list[int]:
        ids = []
        for title in titles:
            item = await crud.create_item(
                database=database, owner_id=owner_id, item=ItemCreate(title=title)
            )
            assert item is not None
            ids.append(item[crud.ITEM_VALUES.index("id")])
        return ids

    ids: list[int] = app_database(client, create)
    return ids


def set_times(database_url: str, table: str, column: str, moments: Mapping[int, datetime]) -> None:
    """Set rows' `created_at` or `updated_at` by SQL, as a data load would (the database keeps
    a stamp an UPDATE sets itself)."""
    backend = parse_database_url(database_url).backend

    def write(connection: Connection) -> None:
        if backend == "mysql":  # TIMESTAMP takes the session's local time: make that UTC
            connection.execute(text("SET time_zone = '+00:00'"))
        for row_id, moment in moments.items():
            value: Any = moment
            if backend == "sqlite":
                value = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
            elif backend == "mysql":
                value = moment.astimezone(UTC).replace(tzinfo=None)
            statement = text(f"UPDATE {table} SET {column} = :moment WHERE id = :id")
            assert connection.execute(statement, {"moment": value, "id": row_id}).rowcount == 1

    run_sync(parse_database_url(database_url), write)


def get_ok(client: TestClient, url: str, params: Params | None = None) -> Response:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response


def listed(
    client: TestClient, path: str, params: Params, headers: Mapping[str, str] | None = None
) -> list[int]:
    """The ids a list answers with, in its order."""
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return row_ids(response)


def row_ids(response: Response) -> list[int]:
    return [row["id"] for row in response.json()]


def links(response: Response) -> dict[str, str]:
    """The `Link` header's targets, by relation."""
    header = response.headers.get("link")
    return {} if header is None else {relation: url for url, relation in LINK.findall(header)}


def link_query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def varies_by_prefer(response: Response) -> bool:
    """Whether `Vary` names `Prefer` (beside what the gzip middleware may add)."""
    values = [value.strip().lower() for value in response.headers.get("vary", "").split(",")]
    return "prefer" in values


# -------------------------------------------------------------------------------- costs


class CpuTimed:
    """The app, with the CPU time its thread spends on each request (the event loop's thread:
    SQLite's statements run on it). CPU time, not the clock's: what the request cost, whatever
    else the machine was doing meanwhile."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.times: list[tuple[str, float]] = []  # (path and query, milliseconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.thread_time()
        try:
            await self.app(scope, receive, send)
        finally:
            spent = (time.thread_time() - started) * 1000
            self.times.append((f"{scope['path']}?{scope['query_string'].decode()}", spent))
