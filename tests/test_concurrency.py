"""Real HTTP, real concurrency: bursts of clients never meet a 500, a lock error or a pool wait."""

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.server import LiveServer, live_server

CLIENTS = 64


async def write_burst(
    server: LiveServer, rounds: int
) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """CLIENTS clients, each POSTing a hero then PATCHing it, `rounds` times."""
    statuses: list[int] = []
    acknowledged: dict[int, dict[str, Any]] = {}
    limits = httpx.Limits(max_connections=CLIENTS)

    async def one_client(number: int, client: httpx.AsyncClient) -> None:
        for round_number in range(rounds):
            name = f"hero {number}-{round_number}"
            created = await client.post(
                "/heroes/", json={"name": name, "secret_name": f"secret {number}"}
            )
            statuses.append(created.status_code)
            if created.status_code != 200:
                continue
            hero_id = created.json()["id"]
            patched = await client.patch(f"/heroes/{hero_id}", json={"age": round_number})
            statuses.append(patched.status_code)
            if patched.status_code == 200:
                acknowledged[hero_id] = patched.json()

    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(one_client(number, client) for number in range(CLIENTS)))
    return statuses, acknowledged


async def read_all(server: LiveServer) -> dict[int, dict[str, Any]]:
    heroes: dict[int, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        offset = 0
        while page := (await client.get(f"/heroes/?offset={offset}&limit=100")).json():
            heroes.update((hero["id"], hero) for hero in page)
            offset += len(page)
    return heroes


def check_writes(server: LiveServer, rounds: int) -> None:
    statuses, acknowledged = asyncio.run(write_burst(server, rounds))
    assert len(statuses) == CLIENTS * rounds * 2
    assert set(statuses) == {200}, {code: statuses.count(code) for code in set(statuses)}
    assert len(acknowledged) == CLIENTS * rounds  # every id distinct
    stored = asyncio.run(read_all(server))
    assert {hero_id: stored.get(hero_id) for hero_id in acknowledged} == acknowledged
    log = server.log_text()
    assert "database is locked" not in log
    assert "Traceback" not in log


def test_64_concurrent_writers(empty_database_url: str, tmp_path: Path) -> None:
    with live_server(empty_database_url, tmp_path) as server:
        check_writes(server, rounds=5)


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
