"""Scale-out: several worker processes and two servers on one database share nothing else."""

import asyncio
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.server import LiveServer, live_server

pytestmark = pytest.mark.processes  # every test here starts heroapi or its command

CLIENTS = 32


@pytest.fixture
def servers(empty_database_url: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    """Two servers started together on one empty database: 2 workers, and 1."""
    with ExitStack() as stack:
        first = tmp_path / "first"
        second = tmp_path / "second"
        first.mkdir()
        second.mkdir()
        # Default settings: the registration race below, from one address all at once, waits
        # its turns at the hashing workers.
        started = [
            stack.enter_context(live_server(empty_database_url, first, workers=2)),
            stack.enter_context(live_server(empty_database_url, second)),
        ]
        yield started


def requests_counted(server: LiveServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        float(value)
        for value in re.findall(
            r'^heroapi_requests_total\{[^}]*route="/heroes/"[^}]*\} (\S+)$', text, re.M
        )
    )


# Replicas behind a load balancer share a database server (a SQLite file is one host's).
@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_workers_and_replicas_on_one_database(servers: list[LiveServer]) -> None:
    async def traffic() -> tuple[list[int], list[int]]:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def create(number: int) -> httpx.Response:
                server = servers[number % 2]
                body = {"name": f"hero {number}", "secret_name": "s"}
                return await client.post(f"{server.url}/heroes/", json=body)

            async def register(number: int) -> httpx.Response:
                server = servers[number % 2]
                body = {"email": "same@example.com", "password": "correct horse"}
                return await client.post(f"{server.url}/users/", json=body)

            heroes = await asyncio.gather(*(create(number) for number in range(CLIENTS * 5)))
            users = await asyncio.gather(*(register(number) for number in range(16)))
        assert all(response.status_code == 200 for response in heroes)
        return [r.json()["id"] for r in heroes], sorted(r.status_code for r in users)

    before = requests_counted(servers[0])
    hero_ids, registrations = asyncio.run(traffic())
    assert len(set(hero_ids)) == len(hero_ids) == CLIENTS * 5
    assert registrations == [200] + [400] * 15
    # The 2-worker server's /metrics adds up both workers: every POST it took is counted.
    assert requests_counted(servers[0]) - before == CLIENTS * 5 / 2
    for server in servers:
        assert httpx.get(f"{server.url}/health/ready").json()["status"] == "ok"
        assert len(httpx.get(f"{server.url}/users/").json()) == 1
    logs = "\n".join(server.log_text() for server in servers)
    # The first process to take the migration lock migrated; every other one found it done
    # (under the lock, or already at head when it started: then it does not even load Alembic).
    assert len(re.findall(r"database migrated base -> \w+", logs)) == 1
    assert "Traceback" not in logs
