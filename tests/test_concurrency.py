"""Real HTTP, real concurrency: bursts of clients never meet a 500, a lock error or a pool wait."""

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.server import LiveServer, live_server, read_all

# Also through a transaction-pooling PgBouncer (tests/pooler.py).
THROUGH_POOLER = True

pytestmark = pytest.mark.processes  # every test here starts heroapi or its command

CLIENTS = 64


@dataclass
class Burst:
    statuses: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    transport_errors: int = 0
    acknowledged: dict[int, dict[str, Any]] = field(default_factory=dict)

    async def timed(self, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await request
        except httpx.TransportError:
            self.transport_errors += 1
            return None
        self.seconds.append(time.perf_counter() - started)
        self.statuses.append(response.status_code)
        return response

    def p99(self) -> float:
        return sorted(self.seconds)[int(len(self.seconds) * 0.99)]


async def write_burst(server: LiveServer, rounds: int) -> Burst:
    """CLIENTS clients, each POSTing a hero then PATCHing it, `rounds` times."""
    burst = Burst()
    limits = httpx.Limits(max_connections=CLIENTS)

    async def one_client(number: int, client: httpx.AsyncClient) -> None:
        for round_number in range(rounds):
            name = f"hero {number}-{round_number}"
            body = {"name": name, "secret_name": f"secret {number}"}
            created = await burst.timed(client.post("/heroes/", json=body))
            if created is None or created.status_code != 200:
                continue
            hero_id = created.json()["id"]
            patch = client.patch(f"/heroes/{hero_id}", json={"age": round_number})
            patched = await burst.timed(patch)
            if patched is not None and patched.status_code == 200:
                burst.acknowledged[hero_id] = patched.json()

    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(one_client(number, client) for number in range(CLIENTS)))
    return burst


def check_writes(server: LiveServer, rounds: int) -> Burst:
    burst = asyncio.run(write_burst(server, rounds))
    statuses, acknowledged = burst.statuses, burst.acknowledged
    assert burst.transport_errors == 0
    assert len(statuses) == CLIENTS * rounds * 2
    assert set(statuses) == {200}, {code: statuses.count(code) for code in set(statuses)}
    assert len(acknowledged) == CLIENTS * rounds  # every id distinct
    stored = asyncio.run(read_all(server))
    assert {hero_id: stored.get(hero_id) for hero_id in acknowledged} == acknowledged
    log = server.log_text()
    assert "database is locked" not in log
    assert "Traceback" not in log
    return burst


def test_load_64_clients_50_writes_each(empty_database_url: str, tmp_path: Path) -> None:
    """64 clients x 50 x (POST, then PATCH): no 5xx, no transport error, p99 under 1 s, and
    every hero reads back as last acknowledged."""
    with live_server(empty_database_url, tmp_path) as server:
        burst = check_writes(server, rounds=50)
    print(f"load: {len(burst.seconds)} requests, p99 {burst.p99() * 1000:.0f} ms")
    assert burst.p99() < 1.0, f"p99 {burst.p99():.3f} s over {len(burst.seconds)} requests"


def test_concurrent_items_under_one_user(empty_database_url: str, tmp_path: Path) -> None:
    with live_server(empty_database_url, tmp_path) as server:
        user = httpx.post(
            f"{server.url}/users/", json={"email": "owner@example.com", "password": "x" * 12}
        ).json()
        burst = Burst()

        async def create_items() -> list[int]:
            limits = httpx.Limits(max_connections=CLIENTS)
            # CLIENTS requests in flight at a time: each one's time is the server's, not a wait
            # for one of the client's connections.
            in_flight = asyncio.Semaphore(CLIENTS)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:

                async def one(number: int) -> int:
                    body = {"title": f"item {number}", "description": str(number)}
                    async with in_flight:
                        response = await burst.timed(
                            client.post(f"/users/{user['id']}/items/", json=body)
                        )
                    assert response is not None
                    return int(response.json()["id"]) if response.status_code == 200 else -1

                return await asyncio.gather(*(one(number) for number in range(CLIENTS * 10)))

        ids = asyncio.run(create_items())
        stored = httpx.get(f"{server.url}/users/{user['id']}").json()["items"]
        log = server.log_text()
    assert burst.transport_errors == 0
    assert set(burst.statuses) == {200}
    assert sorted(ids) == sorted(item["id"] for item in stored)
    assert len(set(ids)) == CLIENTS * 10
    assert burst.p99() < 1.0
    assert "database is locked" not in log
    assert "Traceback" not in log


def test_64_concurrent_writers_on_two_worker_processes(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Two processes writing one database (on SQLite: the file lock, BEGIN IMMEDIATE)."""
    with live_server(empty_database_url, tmp_path, workers=2) as server:
        check_writes(server, rounds=5)


def test_a_burst_larger_than_the_pool_waits_briefly_not_30_seconds(
    empty_database_url: str, tmp_path: Path
) -> None:
    """64 clients on a pool of 4 connections: every request served, none waits for a timeout."""
    settings = {"database_pool_size": "4", "database_pool_timeout": "10"}
    with live_server(empty_database_url, tmp_path, settings=settings) as server:
        created = httpx.post(f"{server.url}/heroes/", json={"name": "a", "secret_name": "b"})
        hero_id = created.json()["id"]

        async def burst() -> list[tuple[int, float]]:
            limits = httpx.Limits(max_connections=CLIENTS)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:

                async def timed(path: str) -> tuple[int, float]:
                    started = time.monotonic()
                    response = await client.get(path)
                    return response.status_code, time.monotonic() - started

                paths = [f"/heroes/{hero_id}", "/heroes/?limit=100"] * (CLIENTS * 5)
                return await asyncio.gather(*(timed(path) for path in paths))

        results = asyncio.run(burst())
    codes = [code for code, _ in results]
    assert set(codes) == {200}, {code: codes.count(code) for code in set(codes)}
    # Far under the pool timeout: requests queued for a connection, none gave up waiting.
    assert max(seconds for _, seconds in results) < 10


def test_concurrent_registrations_of_one_email_make_exactly_one_user(
    empty_database_url: str, tmp_path: Path
) -> None:
    """The check-then-insert race: the unique index decides, every loser gets the 400."""
    racers = 24
    # All from one address at once, on default settings: they wait their turns to hash.
    with live_server(empty_database_url, tmp_path) as server:

        async def race() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=racers)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
                emails = ["Racer@Example.com", "racer@example.com", "RACER@example.com"]
                return await asyncio.gather(
                    *(
                        client.post(
                            "/users/",
                            json={"email": emails[number % 3], "password": "correct horse"},
                        )
                        for number in range(racers)
                    )
                )

        responses = asyncio.run(race())
        users = httpx.get(f"{server.url}/users/").json()
        log = server.log_text()
    codes = sorted(response.status_code for response in responses)
    assert codes == [200] + [400] * (racers - 1)
    assert all(
        response.json() == {"detail": "Email already registered"}
        for response in responses
        if response.status_code == 400
    )
    assert len(users) == 1
    assert "Traceback" not in log
