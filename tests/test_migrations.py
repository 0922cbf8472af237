"""Alembic owns the schema: migrations match the models, run at start-up, and never race."""

import asyncio
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, inspect, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from heroapi import migrate
from heroapi.config import DatabaseURL, parse_database_url
from heroapi.main import create_app
from heroapi.revisions import head_revision
from tests.conftest import make_settings
from tests.databases import run_sync
from tests.server import without_settings

# Also through a transaction-pooling PgBouncer (tests/pooler.py).
THROUGH_POOLER = True

HEROAPI = [sys.executable, "-m", "heroapi"]


def tables(database: DatabaseURL) -> set[str]:
    """The tables in `database`, read through SQLAlchemy's inspector."""
    return run_sync(database, lambda connection: set(inspect(connection).get_table_names()))


def test_upgrading_to_0003_keeps_every_row(empty_database_url: str) -> None:
    """Users, items and heroes made before 0003 keep their ids and data (SQLite copies the
    tables to add AUTOINCREMENT: a dropped `users` must not take its items with it); every user
    gets a stamp of its own; and new ids follow the largest one."""
    database = parse_database_url(empty_database_url)
    migrate.upgrade(database, "0002")

    def fill(connection: Connection) -> None:
        for number in (1, 2, 3):
            connection.execute(
                text(
                    "INSERT INTO users (id, email, email_key, hashed_password) "
                    "VALUES (:id, :email, :email, 'x')"
                ),
                {"id": number, "email": f"u{number}@example.com"},
            )
            connection.execute(
                text("INSERT INTO items (id, title, owner_id) VALUES (:id, 't', :owner)"),
                {"id": number, "owner": number},
            )
            connection.execute(
                text("INSERT INTO hero (id, name, secret_name) VALUES (:id, 'h', 's')"),
                {"id": number},
            )
        connection.execute(text("DELETE FROM hero WHERE id = 3"))
        if database.backend == "postgresql":  # as the app's own inserts would have left it
            connection.execute(text("SELECT setval(pg_get_serial_sequence('hero', 'id'), 3)"))

    run_sync(database, fill)
    migrate.upgrade(database)

    def read(connection: Connection) -> tuple[Any, ...]:
        users = connection.execute(text("SELECT id, security_stamp FROM users ORDER BY id"))
        items = connection.execute(text("SELECT id, owner_id FROM items ORDER BY id"))
        heroes = connection.execute(text("SELECT id FROM hero ORDER BY id"))
        return list(users), list(items), list(heroes)

    users, items, heroes = run_sync(database, read)
    assert [user[0] for user in users] == [1, 2, 3]
    assert len({user[1] for user in users}) == 3
    assert [tuple(item) for item in items] == [(1, 1), (2, 2), (3, 3)]
    assert [hero[0] for hero in heroes] == [1, 2]
    with TestClient(create_app(make_settings(empty_database_url))) as client:
        new = client.post("/heroes/", json={"name": "new", "secret_name": "s"}).json()
    assert new["id"] > 2


# Strings a case-, accent- or padding-blind collation would take for one another, in Unicode
# code point order.
CODE_POINT_ORDER = ("A", "Z", "a", "a ", "b", "e", "é", "é ", "ā")


def test_upgrading_to_0005_compares_text_by_code_point(empty_database_url: str) -> None:
    """After 0005, the text the lists sort and filter by keeps its rows and compares exactly:
    'a' is neither 'A' nor 'a ', and ORDER BY is by code point ('Z' < 'a' < 'é')."""
    database = parse_database_url(empty_database_url)
    migrate.upgrade(database, "0004")
    shuffled = [CODE_POINT_ORDER[(7 * number) % len(CODE_POINT_ORDER)] for number in range(9)]
    assert sorted(shuffled) == list(CODE_POINT_ORDER)

    def fill(connection: Connection) -> None:
        for number, value in enumerate(shuffled, 1):
            connection.execute(
                text(
                    "INSERT INTO users (id, email, email_key, hashed_password) "
                    "VALUES (:id, :value, :key, 'x')"
                ),
                {"id": number, "value": value, "key": f"key{number}"},
            )
            connection.execute(
                text("INSERT INTO items (id, title, owner_id) VALUES (:id, :value, :id)"),
                {"id": number, "value": value},
            )
            connection.execute(
                text("INSERT INTO hero (id, name, secret_name) VALUES (:id, :value, 's')"),
                {"id": number, "value": value},
            )

    run_sync(database, fill)
    migrate.upgrade(database)

    def read(connection: Connection) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for table, column in (("hero", "name"), ("users", "email"), ("items", "title")):
            ordered = connection.execute(
                text(f"SELECT {column} FROM {table} ORDER BY {column}, id")
            )
            equal = connection.execute(
                text(f"SELECT {column} FROM {table} WHERE {column} = :value"),
                {"value": "a"},
            )
            prefix = connection.execute(
                text(
                    f"SELECT {column} FROM {table} "
                    f"WHERE {column} >= :low AND {column} < :high ORDER BY {column}"
                ),
                {"low": "a", "high": "b"},
            )
            found[table] = (
                [row[0] for row in ordered],
                [row[0] for row in equal],
                [row[0] for row in prefix],
            )
        return found

    for table, (ordered, equal, prefix) in run_sync(database, read).items():
        assert ordered == list(CODE_POINT_ORDER), table
        assert equal == ["a"], table
        assert prefix == ["a", "a "], table


def schema(database: DatabaseURL) -> dict[str, Any]:
    """What the inspector reads of every table: columns, indexes, keys and constraints."""

    def read(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        found: dict[str, Any] = {}
        for table in inspector.get_table_names():
            # In any order: a column added back by a downgrade may come last.
            columns = sorted(
                (column["name"], repr(column["type"]), column["nullable"], column["default"])
                for column in inspector.get_columns(table)
            )
            indexes = sorted(
                (
                    str(index["name"]),
                    tuple(index["column_names"]),
                    sorted(index.get("column_sorting", {}).items()),
                    index["unique"],
                )
                for index in inspector.get_indexes(table)
            )
            keys = sorted(
                (str(key["name"]), tuple(key["constrained_columns"]), key["referred_table"])
                for key in inspector.get_foreign_keys(table)
            )
            uniques = sorted(
                (str(unique["name"]), tuple(unique["column_names"]))
                for unique in inspector.get_unique_constraints(table)
            )
            found[table] = (columns, indexes, keys, uniques)
        return found

    return run_sync(database, read)


def test_each_downgrade_restores_the_schema_before_it(empty_database_url: str) -> None:
    """Down one revision, the tables are as that revision left them: columns (type, collation,
    NULL, default), indexes (and their order), foreign keys and unique constraints."""
    database = parse_database_url(empty_database_url)
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [revision.revision for revision in reversed(list(script.walk_revisions()))]
    migrate.upgrade(database, revisions[0])
    for before, revision in itertools.pairwise(revisions):
        expected = schema(database)
        migrate.upgrade(database, revision)
        assert schema(database) != expected, revision
        migrate.downgrade(database, before)
        assert schema(database) == expected, revision
        migrate.upgrade(database, revision)


def cli(database_url: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`heroapi ARGUMENTS` in `cwd` (away from any developer's `.env`)."""
    environment = {**without_settings(os.environ), "DATABASE_URL": database_url}
    return subprocess.run(
        [*HEROAPI, *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_migrations_match_the_models(empty_database_url: str) -> None:
    """The drift check: after `upgrade`, autogenerate finds nothing to change."""
    database = parse_database_url(empty_database_url)
    migrate.upgrade(database)
    state = migrate.inspect(database)
    assert state.at_head
    assert state.differences == ()
    assert {"hero", "alembic_version"} <= tables(database)


def test_downgrade_to_base_and_upgrade_again(empty_database_url: str) -> None:
    database = parse_database_url(empty_database_url)
    migrate.upgrade(database)
    migrate.downgrade(database, "base")
    assert "hero" not in tables(database)
    assert migrate.inspect(database).current == ()
    migrate.upgrade(database)
    assert migrate.inspect(database).at_head


def test_app_migrates_an_empty_database_at_start(empty_database_url: str) -> None:
    settings = make_settings(empty_database_url, migrate_on_start=True)
    with TestClient(create_app(settings)) as client:
        response = client.post("/heroes/", json={"name": "Deadpond", "secret_name": "Dive Wilson"})
        assert response.status_code == 200
    # The schema came from the migrations (create_all would leave no alembic_version behind).
    assert migrate.inspect(settings.database).at_head


@pytest.mark.processes
def test_concurrent_upgrades_are_serialized(empty_database_url: str, tmp_path: Path) -> None:
    """Four `heroapi db upgrade` processes on one empty database: all succeed, one history."""
    processes = [
        subprocess.Popen(
            [*HEROAPI, "db", "upgrade"],
            env={**without_settings(os.environ), "DATABASE_URL": empty_database_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    database = parse_database_url(empty_database_url)
    state = migrate.inspect(database)
    assert state.at_head
    assert state.differences == ()


def hold_migration_lock(
    database: DatabaseURL, held: threading.Event, done: threading.Event
) -> None:
    """Hold the migration lock from a session of our own until `done` is set."""

    def hold(connection: Connection) -> None:
        with migrate.migration_lock(connection, database, 10):
            held.set()
            done.wait(60)

    url = migrate.sqlalchemy_url(database)
    if database.backend == "sqlite":
        with create_engine(url, poolclass=pool.NullPool).connect() as connection:
            hold(connection)
        return

    async def hold_async() -> None:
        engine = create_async_engine(
            url, poolclass=pool.NullPool, connect_args=migrate.connect_arguments(database)
        )
        try:
            async with engine.connect() as connection:
                await connection.run_sync(hold)
        finally:
            await engine.dispose()

    asyncio.run(hold_async())


def test_upgrade_waits_for_the_migration_lock(empty_database_url: str) -> None:
    """While another session holds the lock, an upgrade waits, then gives up with a clear error."""
    database = parse_database_url(empty_database_url)
    held, done = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_migration_lock, args=(database, held, done))
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(migrate.MigrationLockTimeout):
            migrate.upgrade(database, lock_timeout=1)
        assert "hero" not in tables(database)
    finally:
        done.set()
        holder.join(30)
    migrate.upgrade(database, lock_timeout=5)
    assert migrate.inspect(database).at_head


@pytest.mark.processes
def test_cli_upgrade_current_and_check(empty_database_url: str, tmp_path: Path) -> None:
    before = cli(empty_database_url, "db", "check", cwd=tmp_path)
    assert before.returncode == 1
    # A new SQLite database is no file yet, and `check` does not make one.
    expected = "no SQLite database" if empty_database_url.startswith("sqlite") else "latest is"
    assert expected in before.stderr
    upgraded = cli(empty_database_url, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database migrated base -> " in upgraded.stderr
    current = cli(empty_database_url, "db", "current", cwd=tmp_path)
    assert current.returncode == 0
    state = migrate.inspect(parse_database_url(empty_database_url))
    assert f"current: {state.head}" in current.stdout
    checked = cli(empty_database_url, "db", "check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "schema matches the models" in checked.stdout


@pytest.mark.processes
def test_cli_reports_a_bad_url_in_one_line(tmp_path: Path) -> None:
    result = cli("oracle://scott@localhost/db", "db", "upgrade", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert "unsupported database 'oracle'" in result.stderr


def test_the_head_read_from_the_files_is_alembics() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert head_revision() == script.get_current_head()


@pytest.mark.processes
def test_a_server_at_head_starts_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    migrate.upgrade(parse_database_url(url))
    program = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from heroapi.main import create_app\n"
        "from heroapi.config import Settings\n"
        f"settings = Settings(_env_file=None, database_url={url!r}, migrate_on_start=True)\n"
        "with TestClient(create_app(settings)) as c:\n"
        "    assert c.get('/health/ready').status_code == 200\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'alembic', 'asyncpg', 'asyncmy'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=without_settings(os.environ),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]", result.stdout
