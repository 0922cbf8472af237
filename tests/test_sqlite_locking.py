"""SQLite never stalls the service: a statement that meets another connection's lock waits on
the event loop (not inside SQLite), so other requests go on, and gives up with a 503 after
HEROAPI_SQLITE_BUSY_TIMEOUT.

The other connection is a real one on the same file (here, or in the test process while the
server is another), holding the lock as a migration, a backup or the `sqlite3` shell would.
"""

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
import pytest
from sqlalchemy import bindparam, select

from heroapi import migrate
from heroapi.db import DatabaseUnavailable
from heroapi.db.sqlite import SQLiteDatabase
from heroapi.models import hero_table
from tests.conftest import make_settings
from tests.server import live_server

T = TypeVar("T")

_INSERT = hero_table.insert().values(name=bindparam("name"), secret_name="s")
_NAMES = select(hero_table.c.name).order_by(hero_table.c.name)
# Longer than any step of ours may keep the event loop, even on a loaded 2-core machine; a wait
# inside SQLite would stall it for the whole hold, and every hold below is twice this or more.
STALL = 0.2


@contextmanager
def other_connection(path: Path, begin: str) -> Iterator[sqlite3.Connection]:
    """Another connection to the file, in a transaction opened by `begin` until it ends."""
    raw = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    try:
        raw.execute(begin)
        if begin == "BEGIN":
            raw.execute("SELECT count(*) FROM hero").fetchone()  # takes its read lock
        yield raw
    finally:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raw.close()


def stored_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        return {name for (name,) in raw.execute("SELECT name FROM hero")}


async def longest_stall(done: asyncio.Event) -> float:
    """How late the loop ran a 5 ms timer, at worst, until `done`."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while not done.is_set():
        start = loop.time()
        await asyncio.sleep(0.005)
        worst = max(worst, loop.time() - start - 0.005)
    return worst


async def watched(work: Awaitable[T]) -> tuple[T | BaseException, float, float]:
    """`work`'s result (or error), how long it took, and the loop's longest stall meanwhile."""
    done = asyncio.Event()
    stall = asyncio.create_task(longest_stall(done))
    await asyncio.sleep(0)
    start = time.monotonic()
    try:
        result: T | BaseException = await work
    except Exception as error:
        result = error
    took = time.monotonic() - start
    done.set()
    return result, took, await stall


async def quick(read: Callable[[], Awaitable[Any]]) -> float:
    start = time.monotonic()
    await read()
    return time.monotonic() - start


def run_with(tmp_path: Path, timeout: float, test: Callable[[SQLiteDatabase], Awaitable[T]]) -> T:
    settings = make_settings(f"sqlite:///{tmp_path / 'locked.db'}", sqlite_busy_timeout=timeout)
    migrate.upgrade(settings.database)

    async def main() -> T:
        database = SQLiteDatabase(settings.database, settings)
        await database.connect()
        try:
            return await test(database)
        finally:
            await database.close()

    return asyncio.run(main())


def test_a_write_waits_on_the_loop_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    async def test(database: SQLiteDatabase) -> None:
        await database.write(_INSERT, {"name": "before"})
        with other_connection(path, "BEGIN IMMEDIATE") as holder:
            asyncio.get_running_loop().call_later(0.4, holder.rollback)
            write = asyncio.create_task(watched(database.write(_INSERT, {"name": "waited"})))
            await asyncio.sleep(0.05)
            assert not write.done()
            # Reads go on meanwhile, at once.
            assert await quick(lambda: database.fetch_all_values(_NAMES, {})) < STALL
            result, took, stall = await write
        assert getattr(result, "rowcount", None) == 1, result
        assert took >= 0.35  # it did wait for the lock ...
        assert stall < STALL  # ... without holding up the loop

    run_with(tmp_path, 5.0, test)
    assert stored_names(path) == {"before", "waited"}


def test_each_write_gives_up_after_its_own_timeout(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    async def test(database: SQLiteDatabase) -> tuple[Any, Any, float]:
        with other_connection(path, "BEGIN IMMEDIATE") as holder:
            asyncio.get_running_loop().call_later(0.8 + STALL, holder.rollback)
            first = asyncio.create_task(watched(database.write(_INSERT, {"name": "first"})))
            await asyncio.sleep(0.4)
            # Joins the waiting batch, with a deadline of its own (1.2 s, after the release).
            second = asyncio.create_task(database.write(_INSERT, {"name": "second"}))
            refused, took, stall = await first
            assert stall < STALL
            return refused, await second, took

    refused, second, took = run_with(tmp_path, 0.8, test)
    assert isinstance(refused, DatabaseUnavailable)
    assert "HEROAPI_SQLITE_BUSY_TIMEOUT" in str(refused)
    # Given up at its own timeout (0.8 s): at the release it would have written.
    assert 0.75 <= took < 0.8 + STALL
    assert second.rowcount == 1
    assert stored_names(path) == {"second"}


def test_a_transaction_waits_for_the_write_lock_with_the_connection_free(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    async def test(database: SQLiteDatabase) -> Any:
        async def transaction(name: str) -> None:
            async with database.transaction() as connection:
                await connection.execute(_INSERT, {"name": name})

        with other_connection(path, "BEGIN IMMEDIATE") as holder:
            waiting = asyncio.create_task(watched(transaction("given up")))
            await asyncio.sleep(0.05)
            # The connection is free while the transaction waits: reads, and reads in a
            # session of their own, answer at once.
            assert await quick(lambda: database.fetch_one(_NAMES, {})) < STALL

            async def session_read() -> None:
                async with database.connection() as connection:
                    await connection.fetch_all(_NAMES, {})

            assert await quick(session_read) < STALL
            given_up, took, stall = await waiting
            assert isinstance(given_up, DatabaseUnavailable)
            assert took >= 0.75
            assert stall < STALL

            asyncio.get_running_loop().call_later(0.4, holder.rollback)
            return await watched(transaction("kept"))

    result, took, stall = run_with(tmp_path, 0.8, test)
    assert result is None
    assert took >= 0.35
    assert stall < STALL
    assert stored_names(path) == {"kept"}


def in_rollback_journal_mode(database: SQLiteDatabase) -> None:
    """Outside WAL mode readers hold locks a COMMIT must wait for, and a writer blocks reads:
    the two cases WAL mode (nearly) never meets, made real on the same file."""
    assert database._raw is not None
    database._raw.execute("PRAGMA journal_mode=DELETE")


def test_a_commit_refused_by_readers_is_tried_again_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    async def test(database: SQLiteDatabase) -> tuple[Any, ...]:
        in_rollback_journal_mode(database)

        async def transaction(name: str) -> None:
            async with database.transaction() as connection:
                await connection.execute(_INSERT, {"name": name})

        with other_connection(path, "BEGIN"):
            given_up = await watched(transaction("given up"))
        with other_connection(path, "BEGIN") as reader:
            asyncio.get_running_loop().call_later(0.4, reader.rollback)
            committed = await watched(transaction("committed"))
        with other_connection(path, "BEGIN") as reader:
            # A batch of the group commit: rolled back at its refused COMMIT, tried again whole.
            asyncio.get_running_loop().call_later(0.4, reader.rollback)
            batch = await watched(
                asyncio.gather(*(database.write(_INSERT, {"name": n}) for n in ("a", "b")))
            )
        assert database.group_commit is not None
        return given_up, committed, batch, database.group_commit.batches

    given_up, committed, batch, batches = run_with(tmp_path, 0.8, test)
    assert isinstance(given_up[0], DatabaseUnavailable)
    assert given_up[1] >= 0.75
    assert committed[0] is None
    assert committed[1] >= 0.35
    assert [result.rowcount for result in batch[0]] == [1, 1]
    assert batch[1] >= 0.35
    assert batches == 1
    assert max(given_up[2], committed[2], batch[2]) < STALL
    assert stored_names(path) == {"committed", "a", "b"}


def test_a_read_refused_by_a_lock_waits_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    async def test(database: SQLiteDatabase) -> tuple[Any, ...]:
        await database.write(_INSERT, {"name": "there"})
        in_rollback_journal_mode(database)
        with other_connection(path, "BEGIN EXCLUSIVE"):
            given_up = await watched(database.fetch_all_values(_NAMES, {}))
        with other_connection(path, "BEGIN EXCLUSIVE") as writer:
            asyncio.get_running_loop().call_later(0.4, writer.rollback)
            read = await watched(database.fetch_all_values(_NAMES, {}))
        return given_up, read

    given_up, read = run_with(tmp_path, 0.8, test)
    assert isinstance(given_up[0], DatabaseUnavailable)
    assert given_up[1] >= 0.75
    assert read[0] == [("there",)]
    assert read[1] >= 0.35
    assert max(given_up[2], read[2]) < STALL


@pytest.mark.processes
def test_the_server_answers_while_a_post_waits_for_another_process(tmp_path: Path) -> None:
    """The issue, over HTTP: while another process holds the write lock, /health/live and a
    read answer in milliseconds; the POST gets its 503 after the busy timeout, or its hero if
    the lock is let go in time."""
    path = tmp_path / "served.db"
    with (
        live_server(f"sqlite:///{path}", tmp_path, settings={"sqlite_busy_timeout": "1"}) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        hero = client.post("/heroes/", json={"name": "Dive", "secret_name": "s"}).json()
        posted: list[httpx.Response] = []

        def post(name: str) -> threading.Thread:
            def send() -> None:
                with httpx.Client(base_url=server.url, timeout=10) as own:
                    posted.append(own.post("/heroes/", json={"name": name, "secret_name": "s"}))

            thread = threading.Thread(target=send)
            thread.start()
            return thread

        with other_connection(path, "BEGIN IMMEDIATE"):
            start = time.monotonic()
            thread = post("refused")
            time.sleep(0.1)
            slowest = 0.0
            for _ in range(5):
                for url in ("/health/live", f"/heroes/{hero['id']}"):
                    asked = time.monotonic()
                    assert client.get(url).status_code == 200
                    slowest = max(slowest, time.monotonic() - asked)
                time.sleep(0.05)
            thread.join(10)
            took = time.monotonic() - start
        assert slowest < 0.1
        (refused,) = posted
        assert refused.status_code == 503
        assert refused.json() == {"detail": "The database is unavailable; retry later"}
        assert 0.9 <= took < 5

        posted.clear()
        with other_connection(path, "BEGIN IMMEDIATE") as holder:
            thread = post("waited")
            time.sleep(0.3)
            holder.rollback()
            thread.join(10)
        (created,) = posted
        assert created.status_code == 200, created.text
        assert created.json()["name"] == "waited"
    assert stored_names(path) == {"Dive", "waited"}
