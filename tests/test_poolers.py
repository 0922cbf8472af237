"""heroapi behind a connection pooler: a real PgBouncer in transaction and in session mode, in
front of the test PostgreSQL (tests/pooler.py).

The contract, concurrency and migration tests also run through a transaction-pooling PgBouncer
(their modules set THROUGH_POOLER); these are the pooler's own cases: finding it, many requests
at once, a statement past its timeout, migrations that leave nothing behind on the shared server
connections, processes started together and one killed mid-migration.
"""

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from heroapi import migrate
from heroapi.config import Settings, parse_database_url
from heroapi.db import create_database
from heroapi.db.postgres import STATEMENT_CACHE_SIZE, PostgresDatabase
from heroapi.main import create_app
from tests import pooler
from tests.conftest import make_settings, require
from tests.databases import POOLED, throwaway_database
from tests.server import live_server, without_settings

pytestmark = pytest.mark.processes  # every test here starts PgBouncer


@pytest.fixture
def direct_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database on the test PostgreSQL, by its direct URL. Skipped when PostgreSQL
    or PgBouncer is missing (under CI=true the suite stops at its start instead)."""
    require(request.config, POOLED)
    with throwaway_database("postgresql", tmp_path) as url:
        yield url


def through(mode: pooler.PoolMode, direct: str) -> str:
    return pooler.shared(mode).through(direct)


async def _statement_cache_size(settings: Settings) -> int:
    database = create_database(settings)
    assert isinstance(database, PostgresDatabase)
    await database.connect()
    try:
        await database.ping()
        return database.statement_cache_size
    finally:
        await database.close()


def test_a_pooler_is_found_and_statements_are_then_unnamed(direct_url: str) -> None:
    """`auto` finds PgBouncer (either mode) and turns the prepared-statement cache off; on a
    direct connection, or when told `session`, it stays on."""
    cache = {
        name: asyncio.run(_statement_cache_size(make_settings(url, **options)))
        for name, url, options in [
            ("direct", direct_url, {}),
            ("transaction", through("transaction", direct_url), {}),
            ("session", through("session", direct_url), {}),
            ("told session", through("session", direct_url), {"database_pooler": "session"}),
            ("told transaction", direct_url, {"database_pooler": "transaction"}),
        ]
    }
    assert cache == {
        "direct": STATEMENT_CACHE_SIZE,
        "transaction": 0,
        "session": 0,
        "told session": STATEMENT_CACHE_SIZE,
        "told transaction": 0,
    }


@pytest.mark.parametrize(
    ("mode", "pooler_setting"),
    [("transaction", "auto"), ("transaction", "transaction"), ("session", "session")],
)
def test_many_requests_at_once_through_pgbouncer(
    direct_url: str, mode: pooler.PoolMode, pooler_setting: str
) -> None:
    """32 clients creating, reading, changing and listing heroes and users at once, through a
    PgBouncer with fewer server connections than heroapi's pool: every answer is right. (With
    asyncpg's named statements, transaction pooling answered `prepared statement
    "__asyncpg_stmt_N__" already exists` / `does not exist`.)"""
    migrate.upgrade(parse_database_url(direct_url))
    # Session pooling gives each client connection a server connection of its own, for as long
    # as it stays open: heroapi's pool must fit in the pooler's.
    pool_size = {"session": pooler.SERVER_POOL_SIZE}.get(mode, 20)
    settings = make_settings(
        through(mode, direct_url), database_pooler=pooler_setting, database_pool_size=pool_size
    )

    def one_client(client: TestClient, number: int) -> list[int]:
        statuses = []
        for round_ in range(8):
            created = client.post(
                "/heroes/", json={"name": f"h{number}-{round_}", "secret_name": "s"}
            )
            statuses.append(created.status_code)
            hero = created.json()
            statuses.append(client.get(f"/heroes/{hero['id']}").status_code)
            patched = client.patch(f"/heroes/{hero['id']}", json={"age": round_})
            assert patched.json()["age"] == round_
            statuses.append(client.get("/heroes/", params={"limit": 5}).status_code)
            statuses.append(client.get("/users/").status_code)
        return statuses

    with (
        TestClient(create_app(settings)) as client,
        concurrent.futures.ThreadPoolExecutor(32) as pool,
    ):
        results = list(pool.map(lambda number: one_client(client, number), range(32)))
        assert len(client.get("/heroes/", params={"limit": 100}).json()) == 100
    assert {status for statuses in results for status in statuses} == {200}


async def hold_table(
    direct: str, table: str, locked: asyncio.Event, release: asyncio.Event
) -> None:
    """Lock `table` exclusively, from a direct connection of our own, until `release` is set."""
    connection = await asyncpg.connect(direct)
    try:
        async with connection.transaction():
            await connection.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            locked.set()
            await release.wait()
    finally:
        await connection.close()


async def _waiting_for_a_lock(direct: str) -> int:
    """How many backends on `direct`'s database wait for a lock."""
    connection = await asyncpg.connect(direct)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return count
    finally:
        await connection.close()


async def _advisory_locks_within(direct: str, seconds: float) -> int:
    """The advisory locks held on `direct`'s database, once there are none or after `seconds`."""
    connection = await asyncpg.connect(direct)
    try:
        deadline = time.monotonic() + seconds
        while True:
            count: int = await connection.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
            )
            if count == 0 or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


@pytest.mark.parametrize("path", ["direct", "transaction"])
def test_a_statement_past_its_timeout_stops_on_the_server(direct_url: str, path: str) -> None:
    """With the hero table locked, a read waits; past HEROAPI_DATABASE_COMMAND_TIMEOUT the client
    gets a 503, and the statement stops on the server too (it was left running there, holding a
    backend in the lock's queue: a pool of 5 left 16 waiting)."""
    migrate.upgrade(parse_database_url(direct_url))
    url = direct_url if path == "direct" else through("transaction", direct_url)
    settings = make_settings(url, database_command_timeout=1)

    async def scenario(client: TestClient) -> tuple[list[int], int]:
        locked, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_table(direct_url, "hero", locked, release))
        try:
            await asyncio.wait_for(locked.wait(), 10)
            statuses = await asyncio.gather(
                *(asyncio.to_thread(client.get, f"/heroes/{n}") for n in range(1, 4))
            )
            # The statements were cancelled: nothing of heroapi's waits for the lock any more.
            waiting = -1
            for _ in range(40):
                waiting = await _waiting_for_a_lock(direct_url)
                if waiting == 0:
                    break
                await asyncio.sleep(0.1)
            return [response.status_code for response in statuses], waiting
        finally:
            release.set()
            await holder

    with TestClient(create_app(settings)) as client:
        statuses, waiting = asyncio.run(scenario(client))
        assert statuses == [503, 503, 503]
        assert waiting == 0
        assert client.get("/heroes/1").status_code == 404  # and the service goes on


def test_migrating_through_a_transaction_pooler_leaves_no_session_state(direct_url: str) -> None:
    """The migration lock and lock_timeout end with the migration's transaction: the server
    connections PgBouncer hands other clients next have neither."""
    pooled = through("transaction", direct_url)
    migrate.upgrade(parse_database_url(pooled), lock_timeout=7)

    async def server_connections_state() -> set[tuple[str, int]]:
        # Several clients at once, so they take every server connection of the pool.
        clients = [await asyncpg.connect(pooled, statement_cache_size=0) for _ in range(6)]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        client.fetchrow(
                            "SELECT current_setting('lock_timeout') AS timeout, "
                            "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND pid = pg_backend_pid()) AS locks, pg_sleep(0.2)"
                        )
                    )
                    for client in clients
                ]
            rows = [task.result() for task in tasks]
            return {(row["timeout"], row["locks"]) for row in rows if row is not None}
        finally:
            for client in clients:
                await client.close()

    assert asyncio.run(server_connections_state()) == {("0", 0)}
    assert migrate.inspect(parse_database_url(direct_url)).at_head


def test_processes_started_together_through_pgbouncer_migrate_once_and_serve(
    direct_url: str, tmp_path: Path
) -> None:
    """Three `heroapi serve` processes start at once, through a transaction-pooling PgBouncer,
    on an empty database: one migrates, the others wait for it, all three serve."""
    pooled = through("transaction", direct_url)
    with (
        live_server(pooled, tmp_path) as first,
        live_server(pooled, tmp_path) as second,
        live_server(pooled, tmp_path) as third,
    ):
        for server in (first, second, third):
            created = httpx.post(
                f"{server.url}/heroes/", json={"name": "a", "secret_name": "b"}, timeout=10
            )
            assert created.status_code == 200, server.log_text()
    logs = [server.log_text() for server in (first, second, third)]
    assert sum(log.count("database migrated base ->") for log in logs) == 1, logs
    assert migrate.inspect(parse_database_url(direct_url)).at_head


def test_a_migration_killed_midway_leaves_nothing_that_makes_the_next_start_wait(
    direct_url: str, tmp_path: Path
) -> None:
    """A `heroapi db upgrade` through a transaction-pooling PgBouncer, killed with SIGKILL while
    it holds the migration lock: the next upgrade does not wait for it. (A session-level lock was
    left behind on the server connection, which the pooler kept, so every later start waited for
    HEROAPI_MIGRATION_LOCK_TIMEOUT and failed.)"""
    direct = parse_database_url(direct_url)
    pooled = through("transaction", direct_url)
    migrate.upgrade(direct, "0002")

    async def kill_a_migration_midway() -> None:
        released, locked = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_table(direct_url, "users", locked, released))
        await asyncio.wait_for(locked.wait(), 10)
        migration = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "heroapi",
            "db",
            "upgrade",
            env={**without_settings(os.environ), "DATABASE_URL": pooled},
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            # It takes the migration lock, then waits for our lock on users, which 0003 alters.
            deadline = time.monotonic() + 30
            while await _waiting_for_a_lock(direct_url) == 0:
                assert time.monotonic() < deadline, "the migration never reached the table"
                await asyncio.sleep(0.1)
        finally:
            migration.send_signal(signal.SIGKILL)
            await migration.wait()
            released.set()
            await holder

    asyncio.run(kill_a_migration_midway())
    assert asyncio.run(_advisory_locks_within(direct_url, seconds=5)) == 0
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "heroapi", "db", "upgrade"],
        env={
            **without_settings(os.environ),
            "DATABASE_URL": pooled,
            "HEROAPI_MIGRATION_LOCK_TIMEOUT": "10",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 8
    assert migrate.inspect(direct).at_head


def test_migrations_can_take_a_direct_connection(direct_url: str, tmp_path: Path) -> None:
    """HEROAPI_MIGRATION_DATABASE_URL: the app serves through the pooler, and migrates through
    the URL given (here a direct one), which must name the same kind of database."""
    settings = make_settings(
        through("transaction", direct_url),
        migrate_on_start=True,
        migration_database_url=direct_url,
    )
    assert settings.migration_database.url.port == 5432
    with TestClient(create_app(settings)) as client:
        assert client.post("/heroes/", json={"name": "a", "secret_name": "b"}).status_code == 200
    assert migrate.inspect(parse_database_url(direct_url)).at_head
    with pytest.raises(ValidationError, match="same kind of database"):
        make_settings(direct_url, migration_database_url=f"sqlite:///{tmp_path}/other.db")
