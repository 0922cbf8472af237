"""SQLite set up for a server: WAL, busy_timeout, foreign keys, and writes that cannot deadlock."""

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, text

from heroapi import migrate
from heroapi.config import Settings
from heroapi.db import create_database
from heroapi.models import hero_table
from tests.conftest import make_settings


def migrated_sqlite(tmp_path: Path, **overrides: Any) -> Settings:
    settings = make_settings(f"sqlite:///{tmp_path / 'server.db'}", **overrides)
    migrate.upgrade(settings.database)
    return settings


def test_connection_pragmas(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path, sqlite_busy_timeout=7.5)

    async def read_pragmas() -> dict[str, Any]:
        database = create_database(settings)
        await database.connect()
        found: dict[str, Any] = {}
        try:
            async with database.connection() as connection:
                pragmas = (
                    "journal_mode",
                    "foreign_keys",
                    "busy_timeout",
                    "synchronous",
                    "cache_size",
                )
                for pragma in pragmas:
                    row = await connection.fetch_one(text(f"PRAGMA {pragma}"), {})
                    assert row is not None
                    found[pragma] = next(iter(row.values()))
        finally:
            await database.close()
        return found

    assert asyncio.run(read_pragmas()) == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 7500,
        "synchronous": 1,  # NORMAL
        "cache_size": -32 * 1024,
    }


def test_read_then_write_transactions_from_two_processes_never_fail(tmp_path: Path) -> None:
    """Two connections (as two worker processes have) each read, pause, then write in one
    transaction. A deferred BEGIN lets both read, and the second writer then fails at once with
    "database is locked" (its snapshot is stale); BEGIN IMMEDIATE makes it wait its turn."""
    settings = migrated_sqlite(tmp_path)
    select_age = select(hero_table.c.age).where(hero_table.c.id == bindparam("hero_id"))
    set_age = (
        hero_table.update()
        .where(hero_table.c.id == bindparam("hero_id"))
        .values(age=bindparam("age"))
    )
    insert = hero_table.insert().values(id=1, name="Counter", age=0, secret_name="s")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    async def increment_once() -> None:
        database = create_database(settings)
        await database.connect()
        try:
            start.wait(10)
            async with database.transaction() as connection:
                row = await connection.fetch_one(select_age, {"hero_id": 1})
                assert row is not None
                time.sleep(0.2)  # noqa: ASYNC251  (blocks on purpose: both transactions open)
                await connection.execute(set_age, {"hero_id": 1, "age": row["age"] + 1})
        finally:
            await database.close()

    def worker() -> None:
        try:
            asyncio.run(increment_once())
        except BaseException as error:
            errors.append(error)

    async def setup_and_read(step: str) -> int:
        database = create_database(settings)
        await database.connect()
        try:
            if step == "setup":
                async with database.transaction() as connection:
                    await connection.execute(insert, {})
            async with database.connection() as connection:
                row = await connection.fetch_one(select_age, {"hero_id": 1})
                assert row is not None
                age: int = row["age"]
                return age
        finally:
            await database.close()

    asyncio.run(setup_and_read("setup"))
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert asyncio.run(setup_and_read("read")) == 2  # no lost update either
