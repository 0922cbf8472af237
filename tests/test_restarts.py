"""The server databases restarting, hanging or holding locks under heroapi's connections.

- Connections the server closed while idle (a restart, a failover, an idle timeout) cost no
  request: the first round trip that finds one closed is sent again on a new connection.
- A database that is really down is still a fast 503: one new connection is tried, no more.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg
import httpx2 as httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from heroapi.db import Database, DatabaseUnavailable, create_database
from heroapi.db.pool import PooledDatabase
from tests.conftest import make_settings
from tests.proxy import Proxy, proxy_to
from tests.server import live_server

servers = pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)


async def mysql_session(url: str) -> Any:
    """A plain asyncmy connection (autocommit) to the database of `url`, beside heroapi's."""
    parsed = make_url(url)
    return await asyncmy.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        autocommit=True,
    )


async def sql(session: Any, statement: str) -> list[Any]:
    async with session.cursor() as cursor:
        await cursor.execute(statement)
        return list(await cursor.fetchall())


async def close_heroapi_connections(url: str) -> int:
    """Close every connection heroapi holds to the database of `url`, from the server's side,
    as a restart or an idle timeout does; returns how many there were."""
    database_name = make_url(url).database
    if url.startswith("postgresql"):
        session = await asyncpg.connect(url)
        try:
            closed = await session.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'heroapi'",
                database_name,
            )
        finally:
            await session.close()
        return len(closed)
    session = await mysql_session(url)
    try:
        ids = await sql(
            session,
            "SELECT id FROM information_schema.processlist"
            f" WHERE db = '{database_name}' AND id <> CONNECTION_ID()",
        )
        for (connection_id,) in ids:
            await sql(session, f"KILL CONNECTION {connection_id}")
    finally:
        session.close()
    return len(ids)


@pytest.mark.processes
@servers
def test_connections_the_server_closed_while_idle_cost_no_request(
    empty_database_url: str, tmp_path: Path
) -> None:
    settings = {"database_pool_size": "4"}
    with live_server(empty_database_url, tmp_path, settings=settings) as server:

        async def scenario() -> int:
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                hero = {"secret_name": "s"}
                created = await asyncio.gather(
                    *(client.post("/heroes/", json=hero | {"name": f"h{n}"}) for n in range(16))
                )
                ids = [response.json()["id"] for response in created]
                closed = await close_heroapi_connections(empty_database_url)
                await asyncio.sleep(0.2)  # the servers' closes reach heroapi's sockets
                # As many requests at once as the pool had connections, and more: each of
                # the closed ones is taken by one of them.
                requests = [client.get("/heroes/")]
                requests += [client.get(f"/heroes/{hero_id}") for hero_id in ids[:8]]
                requests += [
                    client.post("/heroes/", json=hero | {"name": "after"}),
                    client.patch(f"/heroes/{ids[8]}", json={"age": 30}),  # MariaDB: a transaction
                    client.delete(f"/heroes/{ids[9]}"),
                    client.get("/health/ready"),
                ]
                answers = await asyncio.gather(*requests)
                assert [answer.status_code for answer in answers] == [200] * len(requests), [
                    answer.text for answer in answers if answer.status_code != 200
                ]
                return closed

        closed = asyncio.run(scenario())
        assert closed >= 2  # several of the pool's idle connections were closed under it
        log = server.log_text()
    assert "Traceback" not in log
    assert "database unavailable" not in log


def through_proxy(url: str, proxy: Proxy) -> str:
    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )


@asynccontextmanager
async def connected(url: str, **settings: Any) -> AsyncIterator[PooledDatabase[Any]]:
    database = create_database(make_settings(url, **settings))
    assert isinstance(database, PooledDatabase)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


def count_opens(database: PooledDatabase[Any]) -> list[int]:
    """Count the pool's attempts to open a connection (into the returned list's one item)."""
    opens = [0]
    pool = database._pool
    open_connection = pool._open

    async def counted() -> Any:
        opens[0] += 1
        return await open_connection()

    pool._open = counted
    return opens


@servers
def test_a_database_that_is_down_is_a_fast_503_after_one_new_connection(
    empty_database_url: str,
) -> None:
    real = make_url(empty_database_url)
    with proxy_to(real.host or "127.0.0.1", real.port or 0) as proxy:

        async def scenario() -> None:
            async with connected(through_proxy(empty_database_url, proxy)) as database:
                opens = count_opens(database)
                proxy.cut("refuse")  # its connections closed, new ones refused
                for attempt in (autocommit_values, transaction_values):
                    started = time.monotonic()
                    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
                        await attempt(database)
                    assert time.monotonic() - started < 1
                # The idle connection's failure let one new connection be tried; the second
                # request found the pool empty: one more. No loop.
                assert opens == [2]

        asyncio.run(scenario())


async def autocommit_values(database: Database) -> Any:
    return await database.fetch_values(text("SELECT 1"), {})


async def transaction_values(database: Database) -> Any:
    async with database.transaction() as connection:
        return await connection.fetch_values(text("SELECT 1"), {})
