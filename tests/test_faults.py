"""Faults: the server killed mid-write, the database gone or hung, a graceful shutdown.

Each runs heroapi as a real server (`heroapi serve`) and checks what clients saw against what
the database kept.
"""

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any, Literal

import httpx2 as httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from heroapi.db import DatabaseUnavailable, create_database
from tests.conftest import make_settings
from tests.proxy import proxy_to
from tests.server import LiveServer, free_port, live_server, read_all

pytestmark = pytest.mark.processes  # every test here starts heroapi or its command

Writes = dict[int, Any]


async def write_until_killed(
    server: LiveServer, seconds: float, clients: int = 16
) -> tuple[Writes, Writes]:
    """Create and update heroes until the server dies. Returns what it acknowledged (2xx), by
    id, and the update that was in flight when it died (stored or not: both are right)."""
    acknowledged: Writes = {}
    in_flight: Writes = {}
    deadline = time.monotonic() + seconds

    async def client_loop(number: int, client: httpx.AsyncClient) -> None:
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            try:
                created = await client.post(
                    "/heroes/", json={"name": f"c{number}-{sequence}", "secret_name": "s"}
                )
                if created.status_code != 200:
                    continue
                hero = created.json()
                acknowledged[hero["id"]] = hero
                in_flight[hero["id"]] = hero | {"age": sequence}
                patched = await client.patch(f"/heroes/{hero['id']}", json={"age": sequence})
                if patched.status_code == 200:
                    acknowledged[hero["id"]] = patched.json()
                    del in_flight[hero["id"]]
            except httpx.TransportError:
                return  # the server is gone: unacknowledged writes may or may not be there

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=10) as client:
        await asyncio.gather(*(client_loop(number, client) for number in range(clients)))
    return acknowledged, in_flight


def test_acknowledged_writes_survive_sigkill(empty_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    acknowledged: Writes = {}
    in_flight: Writes = {}
    for _ in range(3):
        with live_server(empty_database_url, tmp_path, port=port) as server:

            async def load_then_kill(target: LiveServer = server) -> tuple[Writes, Writes]:
                load = asyncio.create_task(write_until_killed(target, seconds=10))
                await asyncio.sleep(1.0)
                target.process.send_signal(signal.SIGKILL)
                return await load

            acked, pending = asyncio.run(load_then_kill())
            acknowledged |= acked
            in_flight |= pending
            server.process.wait(10)
    assert len(acknowledged) > 50
    # Restarted with no manual step (the same command, the same database).
    with live_server(empty_database_url, tmp_path, port=port) as server:
        stored = asyncio.run(read_all(server))
    lost_or_changed = {
        hero_id: (hero, stored.get(hero_id))
        for hero_id, hero in acknowledged.items()
        if stored.get(hero_id) not in (hero, in_flight.get(hero_id))
    }
    assert lost_or_changed == {}
    print(f"crash: {len(acknowledged)} acknowledged heroes checked after 3 SIGKILLs")


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_database_outage_is_503_and_heroapi_recovers(
    empty_database_url: str, tmp_path: Path, mode: Literal["refuse", "blackhole"]
) -> None:
    real = make_url(empty_database_url)
    with proxy_to(real.host or "127.0.0.1", real.port or 5432) as proxy:
        through_proxy = real.set(host="127.0.0.1", port=proxy.port)
        settings = {
            "database_connect_timeout": "2",
            "database_command_timeout": "2",
            "database_pool_timeout": "2",
            "health_timeout": "1",
        }
        url = through_proxy.render_as_string(hide_password=False)
        with live_server(url, tmp_path, settings=settings) as server:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                hero = client.post("/heroes/", json={"name": "before", "secret_name": "s"}).json()
                proxy.cut(mode)
                # First, on the idle connection: a transaction on MariaDB, whose BEGIN must not
                # wait longer than a statement would.
                started = time.monotonic()
                patched = client.patch(f"/heroes/{hero['id']}", json={"age": 1})
                assert patched.status_code == 503, patched.text
                assert time.monotonic() - started < 8
                for _ in range(3):
                    started = time.monotonic()
                    response = client.get("/heroes/")
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"]
                    assert response.json()["detail"]
                    assert time.monotonic() - started < 8  # bounded: timeouts, not a hang
                write = client.post("/heroes/", json={"name": "during", "secret_name": "s"})
                assert write.status_code == 503
                assert client.get("/health/ready").status_code == 503
                assert client.get("/health/live").status_code == 200
                proxy.restore()
                deadline = time.monotonic() + 20
                while client.get("/heroes/").status_code != 200:  # no restart: it reconnects
                    assert time.monotonic() < deadline, "heroapi did not recover"
                    time.sleep(0.2)
                assert client.get("/health/ready").status_code == 200
                assert [hero["name"] for hero in client.get("/heroes/").json()] == ["before"]
            log = server.log_text()
        assert "Traceback" not in log


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_statement_with_no_answer_fails_after_the_command_timeout(
    empty_database_url: str,
) -> None:
    settings = make_settings(empty_database_url, database_command_timeout=1)

    async def wait_for_nothing() -> float:
        database = create_database(settings)
        await database.connect()
        try:
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="did not answer within 1 s"):
                await database.fetch_values(text("SELECT pg_sleep(10)"), {})
            waited = time.monotonic() - started
            # Its connection was closed; the next statement gets another one.
            assert await database.fetch_values(text("SELECT 1"), {}) == (1,)
            with pytest.raises(DatabaseUnavailable, match="did not answer within 1 s"):
                async with database.transaction() as connection:
                    await connection.fetch_values(text("SELECT pg_sleep(10)"), {})
            assert await database.fetch_values(text("SELECT 2"), {}) == (2,)
            return waited
        finally:
            await database.close()

    assert 1 <= asyncio.run(wait_for_nothing()) < 2.5


def test_sigterm_lets_requests_in_flight_finish(empty_database_url: str, tmp_path: Path) -> None:
    # Eight hashes from one address at once (on default settings, they wait their turns).
    with live_server(empty_database_url, tmp_path) as server:

        async def register_then_stop() -> list[int]:
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                # Connections open first, so the requests below are on the wire at once.
                await asyncio.gather(*(client.get("/health/live") for _ in range(8)))
                # Each registration hashes a password (~0.1 s, 8 of them on a few threads): they
                # are still running when the server is told to stop.
                requests = [
                    asyncio.create_task(
                        client.post(
                            "/users/", json={"email": f"u{n}@example.com", "password": "x" * 12}
                        )
                    )
                    for n in range(8)
                ]
                await asyncio.sleep(0.05)
                os.kill(server.process.pid, signal.SIGTERM)
                return [response.status_code for response in await asyncio.gather(*requests)]

        assert asyncio.run(register_then_stop()) == [200] * 8
        server.process.wait(30)
        assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health/live", timeout=2)
