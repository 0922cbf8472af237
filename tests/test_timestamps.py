"""Row timestamps: `created_at` and `updated_at` on heroes, users and items are the database's
(UTC, set at INSERT, moved at every UPDATE whoever sends it), never in a response body, and sent
as `Last-Modified` by single-resource reads."""

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from heroapi import migrate
from heroapi.config import parse_database_url
from tests.databases import run_sync
from tests.support import create_item, create_user, login

HERO_KEYS = {"name", "age", "id"}
USER_KEYS = {"email", "id", "is_active", "items"}
ITEM_KEYS = {"title", "description", "id", "owner_id"}
# The test process and the database server share this machine's clock.
CLOCK_SLACK = timedelta(seconds=5)


def _utc(value: Any) -> datetime:
    """A timestamp as the driver returns it, as an aware UTC datetime: text on SQLite (UTC by
    construction), aware on PostgreSQL, naive on MariaDB (read in a UTC session, see below)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def stamps(database_url: str, table: str, row_id: int) -> tuple[datetime, datetime]:
    """(created_at, updated_at) of a row, read outside heroapi."""
    backend = parse_database_url(database_url).backend

    def read(connection: Connection) -> tuple[datetime, datetime]:
        if backend == "mysql":  # TIMESTAMP is shown in the session's zone: ask for UTC
            connection.execute(text("SET time_zone = '+00:00'"))
        elif backend == "postgresql":  # aware either way; a far zone proves nothing is lost
            connection.execute(text("SET TIME ZONE 'Asia/Kolkata'"))
        row = connection.execute(
            text(f"SELECT created_at, updated_at FROM {table} WHERE id = :id"),
            {"id": row_id},
        ).one()
        return _utc(row[0]), _utc(row[1])

    return run_sync(parse_database_url(database_url), read)


def update_outside_heroapi(database_url: str, sql: str, row_id: int) -> None:
    """An UPDATE by another client, in a session far from UTC where the backend has zones."""
    backend = parse_database_url(database_url).backend

    def write(connection: Connection) -> None:
        if backend == "mysql":
            connection.execute(text("SET time_zone = '+05:00'"))
        elif backend == "postgresql":
            connection.execute(text("SET TIME ZONE 'America/Los_Angeles'"))
        assert connection.execute(text(sql), {"id": row_id}).rowcount == 1

    run_sync(parse_database_url(database_url), write)


def last_modified(response: Any) -> datetime:
    header = response.headers["last-modified"]
    assert header.endswith(" GMT"), header
    return parsedate_to_datetime(header)


def assert_recent(moment: datetime, since: datetime) -> None:
    """`moment` is UTC time between `since` and now (a local time would be hours off)."""
    assert since - CLOCK_SLACK <= moment <= datetime.now(UTC) + CLOCK_SLACK, (moment, since)


def test_hero_timestamps(client: TestClient, database_url: str) -> None:
    """created_at and updated_at are set at creation; PATCH and a raw SQL UPDATE move updated_at
    only; GET /heroes/{id} sends it as Last-Modified, on the fast and the slow path; no body
    carries them."""
    start = datetime.now(UTC)
    created = client.post("/heroes/", json={"name": "Deadpond", "secret_name": "Dive Wilson"})
    assert created.status_code == 200
    assert set(created.json()) == HERO_KEYS
    hero_id = created.json()["id"]
    created_at, updated_at = stamps(database_url, "hero", hero_id)
    assert_recent(created_at, start)
    assert updated_at == created_at

    for path in (f"/heroes/{hero_id}", f"/heroes/0{hero_id}"):  # direct route, then FastAPI's
        read = client.get(path)
        assert read.status_code == 200
        assert set(read.json()) == HERO_KEYS
        assert last_modified(read) == updated_at.replace(microsecond=0)

    time.sleep(0.01)  # past SQLite's millisecond
    patched = client.patch(f"/heroes/{hero_id}", json={"age": 30})
    assert set(patched.json()) == HERO_KEYS
    created_after, patched_at = stamps(database_url, "hero", hero_id)
    assert created_after == created_at
    assert patched_at > updated_at
    assert_recent(patched_at, start)
    assert set(client.get("/heroes/").json()[0]) == HERO_KEYS

    time.sleep(1.01)  # Last-Modified has whole seconds: it must move too
    update_outside_heroapi(database_url, "UPDATE hero SET age = 31 WHERE id = :id", hero_id)
    created_after, raw_at = stamps(database_url, "hero", hero_id)
    assert created_after == created_at
    assert raw_at > patched_at
    assert_recent(raw_at, start)
    read = client.get(f"/heroes/{hero_id}")
    assert read.json() == {"name": "Deadpond", "age": 31, "id": hero_id}
    assert last_modified(read) == raw_at.replace(microsecond=0)
    assert last_modified(read) > created_at.replace(microsecond=0)


def test_user_and_item_timestamps(client: TestClient, database_url: str) -> None:
    """The same for users (PATCH /users/me, raw SQL) and items (raw SQL): set at creation, moved
    by updates, sent as Last-Modified by GET /users/{id} and GET /items/{id}, in no body."""
    start = datetime.now(UTC)
    user = create_user(client, "stamps@example.com")
    assert set(user) == USER_KEYS
    item = create_item(client, user["id"])
    assert set(item) == ITEM_KEYS
    for table, row_id, path, keys in (
        ("users", user["id"], f"/users/{user['id']}", USER_KEYS),
        ("items", item["id"], f"/items/{item['id']}", ITEM_KEYS),
    ):
        created_at, updated_at = stamps(database_url, table, row_id)
        assert_recent(created_at, start)
        assert updated_at == created_at
        read = client.get(path)
        assert read.status_code == 200
        assert set(read.json()) == keys
        assert last_modified(read) == updated_at.replace(microsecond=0)

    time.sleep(0.01)
    headers = login(client, "stamps@example.com")
    patched = client.patch("/users/me", json={"email": "stamped@example.com"}, headers=headers)
    assert patched.status_code == 200, patched.text
    assert set(patched.json()) == USER_KEYS
    user_created, user_patched = stamps(database_url, "users", user["id"])
    assert user_patched > user_created
    assert_recent(user_patched, start)

    time.sleep(1.01)
    update_outside_heroapi(
        database_url, "UPDATE users SET is_active = false WHERE id = :id", user["id"]
    )
    update_outside_heroapi(
        database_url, "UPDATE items SET title = 'Gun' WHERE id = :id", item["id"]
    )
    for table, row_id, path, before in (
        ("users", user["id"], f"/users/{user['id']}", user_patched),
        ("items", item["id"], f"/items/{item['id']}", user_created),
    ):
        created_at, updated_at = stamps(database_url, table, row_id)
        assert updated_at > before
        assert updated_at > created_at
        assert_recent(updated_at, start)
        read = client.get(path)
        assert read.status_code == 200
        assert last_modified(read) == updated_at.replace(microsecond=0)
        assert last_modified(read) > created_at.replace(microsecond=0)


def test_rows_made_before_0004_get_timestamps(empty_database_url: str) -> None:
    """Upgrading gives existing rows the migration's time for both stamps (SQLite copies the
    tables: the rows, their ids and the update trigger must all be there afterwards)."""
    database = parse_database_url(empty_database_url)
    migrate.upgrade(database, "0003")

    def fill(connection: Connection) -> None:
        connection.execute(
            text(
                "INSERT INTO users (id, email, email_key, hashed_password) "
                "VALUES (1, 'a', 'a', 'x')"
            )
        )
        connection.execute(text("INSERT INTO items (id, title, owner_id) VALUES (1, 't', 1)"))
        connection.execute(text("INSERT INTO hero (id, name, secret_name) VALUES (1, 'h', 's')"))

    run_sync(database, fill)
    start = datetime.now(UTC)
    migrate.upgrade(database)
    for table in ("hero", "users", "items"):
        created_at, updated_at = stamps(empty_database_url, table, 1)
        assert_recent(created_at, start)
        assert updated_at == created_at
    time.sleep(0.01)
    update_outside_heroapi(empty_database_url, "UPDATE hero SET age = 1 WHERE id = :id", 1)
    created_at, updated_at = stamps(empty_database_url, "hero", 1)
    assert updated_at > created_at


def test_an_update_that_sets_updated_at_keeps_it(client: TestClient, database_url: str) -> None:
    """A restore or data load may write the stamp itself, on every backend (as MariaDB's
    ON UPDATE does; the triggers of SQLite and PostgreSQL follow it)."""
    hero_id = client.post("/heroes/", json={"name": "Rusty", "secret_name": "Tommy"}).json()["id"]
    # 2001-02-03 04:05:06 UTC, written from each backend's session (far from UTC, see above).
    moment = {
        "sqlite": "'2001-02-03 04:05:06'",
        "postgresql": "'2001-02-03 04:05:06+00'",
        "mysql": "CONVERT_TZ('2001-02-03 04:05:06', '+00:00', @@session.time_zone)",
    }[parse_database_url(database_url).backend]
    update_outside_heroapi(
        database_url, f"UPDATE hero SET age = 2, updated_at = {moment} WHERE id = :id", hero_id
    )
    read = client.get(f"/heroes/{hero_id}")
    assert read.headers["last-modified"] == "Sat, 03 Feb 2001 04:05:06 GMT"
