"""The requests the benchmark sends most are each one statement, in autocommit (no BEGIN and
COMMIT, which on a server database are two round trips more), on every backend: a hero's PATCH
of the fields it returns (on MariaDB, which has no UPDATE ... RETURNING, answered from what was
sent once the UPDATE says it matched the hero), a new item (INSERT ... SELECT ... RETURNING:
MariaDB has it from 10.5) and, on a server, a user with their items (a LEFT JOIN). They still
answer as before: 404 for what does not exist, and a PATCH that changes nothing is the hero as
it is. On MariaDB each statement is prepared once per connection, then only executed."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, select, text

from heroapi.db import Connection, Database
from heroapi.db.mysql import returns_inserted_rows
from heroapi.models import hero_table
from tests.support import create_user


@contextlib.contextmanager
def counted(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """What the app's database runs meanwhile: `(statements, transactions)` so far."""
    database: Database = client.app.state.database  # type: ignore[attr-defined]
    opened = database.transaction
    transactions = 0

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Connection]:
        nonlocal transactions
        transactions += 1
        async with opened() as connection:
            yield connection

    monkeypatch.setattr(database, "transaction", transaction)
    before = database.statements_run
    yield lambda: (database.statements_run - before, transactions)
    monkeypatch.undo()


def create_hero(client: TestClient, name: str, age: int | None) -> dict[str, Any]:
    response = client.post("/heroes/", json={"name": name, "age": age, "secret_name": "s"})
    assert response.status_code == 200, response.text
    hero: dict[str, Any] = response.json()
    return hero


def test_a_patch_of_every_returned_field_is_one_statement(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hero = create_hero(client, "Deadpond", 30)
    with counted(client, monkeypatch) as count:
        response = client.patch(f"/heroes/{hero['id']}", json={"name": "Spider", "age": 31})
        assert count() == (1, 0)
    assert response.status_code == 200
    assert response.json() == {"name": "Spider", "age": 31, "id": hero["id"]}
    assert client.get(f"/heroes/{hero['id']}").json() == response.json()


def test_a_patch_that_changes_nothing_is_the_hero_and_a_missing_hero_404(
    client: TestClient,
) -> None:
    """MariaDB counts the rows an UPDATE changed unless told to count those it matched: an
    UPDATE to the values a hero has must still find the hero."""
    hero = create_hero(client, "Deadpond", None)
    same = client.patch(f"/heroes/{hero['id']}", json={"name": "Deadpond", "age": None})
    assert same.status_code == 200
    assert same.json() == hero
    missing = client.patch(f"/heroes/{hero['id'] + 1}", json={"name": "Deadpond", "age": 1})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Hero not found"}


def test_a_new_item_is_one_statement(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    user = create_user(client, "rick@example.com")
    with counted(client, monkeypatch) as count:
        response = client.post(f"/users/{user['id']}/items/", json={"title": "Portal Gun"})
        assert count() == (1, 0)
    assert response.status_code == 200
    item = response.json()
    assert item == {
        "title": "Portal Gun",
        "description": None,
        "id": item["id"],
        "owner_id": user["id"],
    }
    assert client.get(f"/items/{item['id']}").json() == item
    missing = client.post(f"/users/{user['id'] + 1}/items/", json={"title": "Portal Gun"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "User not found"}


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_mariadb_prepares_a_statement_once_per_connection(
    run_in_app: Callable[[Callable[[Database], Awaitable[Any]]], Any],
) -> None:
    """And then only executes it (the binary protocol): a read by id run again three times on
    its connection is three COM_STMT_EXECUTEs, no COM_STMT_PREPARE, none sent as text."""
    by_id = select(hero_table.c.name).where(hero_table.c.id == bindparam("hero_id"))
    status = text(
        "SHOW SESSION STATUS WHERE Variable_name"
        " IN ('Com_stmt_prepare', 'Com_stmt_execute', 'Com_select')"
    )

    async def counts(connection: Connection) -> dict[str, int]:
        rows = await connection.fetch_all(status, {})
        return {row["Variable_name"]: int(row["Value"]) for row in rows}

    async def sent(database: Database) -> dict[str, int]:
        async with database.connection() as connection:
            await connection.fetch_values(by_id, {"hero_id": 1})  # prepared on this connection
            before = await counts(connection)
            for _ in range(3):
                await connection.fetch_values(by_id, {"hero_id": 1})
            after = await counts(connection)
        return {name: after[name] - before[name] for name in after}

    # Three reads executed, and the second SHOW that counts them (prepared by the first).
    assert run_in_app(sent) == {"Com_stmt_prepare": 0, "Com_stmt_execute": 4, "Com_select": 3}


def test_a_user_with_items_is_one_statement_on_a_server(
    backend: str, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One round trip on PostgreSQL and MariaDB; on SQLite, which has none to save, two
    statements cost less than the join (`users._USER_THEN_ITEMS`)."""
    user = create_user(client, "morty@example.com")
    items = [
        client.post(f"/users/{user['id']}/items/", json={"title": title}).json()
        for title in ("Portal Gun", "Plumbus")
    ]
    with counted(client, monkeypatch) as count:
        response = client.get(f"/users/{user['id']}")
        assert count() == (2 if backend == "sqlite" else 1, 0)
    assert response.status_code == 200
    assert response.json() == user | {"items": items}
    alone = create_user(client, "summer@example.com")
    assert client.get(f"/users/{alone['id']}").json() == alone
    assert client.get(f"/users/{alone['id'] + 1}").status_code == 404


@pytest.mark.parametrize(
    ("version", "returning"),
    [
        ("5.5.5-10.11.19-MariaDB-0+deb12u1", True),  # MariaDB's handshake, prefixed
        ("10.5.0-MariaDB", True),
        ("11.4.2-MariaDB-log", True),
        ("10.4.34-MariaDB", False),
        ("8.0.36", False),  # MySQL
    ],
)
def test_insert_returning_is_used_on_mariadb_from_10_5(version: str, returning: bool) -> None:
    assert returns_inserted_rows(version) is returning
