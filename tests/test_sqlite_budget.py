"""SQLite's reads run on the event loop under a time budget (HEROAPI_SQLITE_STATEMENT_BUDGET,
20 ms of CPU by default): past it SQLite interrupts the read, and the request gets a 503. Writes
are never interrupted: neither the group commit's nor a write transaction's statements."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from heroapi import migrate
from heroapi.db import Database
from heroapi.db.sqlite import StatementOverBudget
from tests.conftest import app_database, make_settings, running_app
from tests.rows import add_many_heroes

# A read of millions of rows: seconds of CPU, far past any budget.
_LONG_READ: Final = text(
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50000000)"
    " SELECT count(*) FROM c"
)
# Heroes made by one statement that runs well past the budget (~0.1 s of CPU).
_ROWS: Final = 300_000
_LONG_WRITE: Final = text(
    f"INSERT INTO hero (name, secret_name) SELECT 'Hero', 's' FROM (WITH RECURSIVE"
    f" c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {_ROWS}) SELECT n FROM c)"
)
_COUNT: Final = text("SELECT count(*) FROM hero WHERE secret_name = 's'")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on SQLite, default settings (the budget among them)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'budget.db'}")
    migrate.upgrade(settings.database)
    with running_app(settings) as test_client:
        yield test_client


def test_a_long_read_is_interrupted_within_its_budget(client: TestClient) -> None:
    async def read(database: Database) -> float:
        started = time.monotonic()
        with pytest.raises(StatementOverBudget):
            await database.fetch_values(_LONG_READ, {})
        return time.monotonic() - started

    # 20 ms of CPU; the clock may run further on a loaded machine, not to the read's seconds.
    assert app_database(client, read) < 1.0
    assert client.get("/heroes/").status_code == 200  # the connection serves on


def test_writes_are_never_interrupted(client: TestClient) -> None:
    async def write(database: Database) -> tuple[int, int]:
        result = await database.write(_LONG_WRITE, {})  # the group commit's
        async with database.transaction() as connection:
            await connection.execute(_LONG_WRITE, {})
            # A read inside a write transaction: interrupting it would roll the writes back.
            inside = await connection.fetch_values(_COUNT, {})
        assert inside is not None
        return result.rowcount, int(inside[0])

    assert app_database(client, write) == (_ROWS, 2 * _ROWS)

    async def count(database: Database) -> int:
        row = await database.fetch_values(text("SELECT count(*) FROM hero"), {})
        assert row is not None
        return int(row[0])

    assert app_database(client, count) == 2 * _ROWS


def test_a_list_past_its_budget_is_a_503(client: TestClient) -> None:
    add_many_heroes(client, 100_000)
    # Every name starts with "Hero": the planner takes the name index's range (it cannot know
    # the prefix matches every row) and sorts all 100,000 rows by age (~0.1 s of CPU).
    slow = client.get("/heroes/", params={"name_prefix": "Hero", "order": "-age"})
    assert slow.status_code == 503, slow.text
    assert slow.headers["retry-after"] == "1"
    assert "cursor" in slow.json()["detail"]
    assert client.get("/heroes/", params={"name_prefix": "Hero 00"}).status_code == 200


def test_a_count_past_its_budget_is_left_out(tmp_path: Path) -> None:
    """A count is an extra: past the budget the page is answered without it (RFC 7240: no
    `Preference-Applied`). A budget of 2 ms: counting 10,000 rows, each looked up in the table
    for its age, takes longer on any machine; reading the page's 4 rows, far less."""
    settings = make_settings(f"sqlite:///{tmp_path / 'count.db'}", sqlite_statement_budget=0.002)
    migrate.upgrade(settings.database)
    with running_app(settings) as client:
        add_many_heroes(client, 100_000)
        params = {"name_prefix": "Hero", "age_null": "false", "order": "name", "limit": "3"}
        page = client.get("/heroes/", params=params, headers={"Prefer": "count=exact"})
        assert page.status_code == 200, page.text
        assert page.json() == client.get("/heroes/", params=params).json()
        assert len(page.json()) == 3
        assert "x-total-count" not in page.headers
        assert "x-total-count-at-least" not in page.headers
        assert "preference-applied" not in page.headers
