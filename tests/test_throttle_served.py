"""The throttle and the hashing turns as a user meets them: `heroapi serve`, on SQLite, driven
over HTTP."""

import asyncio
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.server import live_server

pytestmark = pytest.mark.processes

PASSWORD = "chimichangas4life"
REGISTRATIONS = 1_000
CONNECTIONS = 16


def test_a_thousand_registrations_from_one_address_on_default_settings(tmp_path: Path) -> None:
    """A seeding script: every registration gets the tutorial's answer, none a 429 or a 503
    (they wait their turns at the hashing workers)."""
    database_url = f"sqlite:///{tmp_path / 'heroes.db'}"
    with live_server(database_url, tmp_path) as server:

        async def register_all() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=CONNECTIONS)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
                emails = iter(range(REGISTRATIONS))
                answers: list[httpx.Response] = []

                async def connection() -> None:
                    for number in emails:  # shared: each number is registered once
                        body = {"email": f"user{number}@example.com", "password": PASSWORD}
                        answers.append(await client.post("/users/", json=body))

                await asyncio.wait_for(
                    asyncio.gather(*(connection() for _ in range(CONNECTIONS))), timeout=900
                )
                return answers

        answers = asyncio.run(register_all())
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * REGISTRATIONS, {code: statuses.count(code) for code in statuses}
    emails = sorted(answer.json()["email"] for answer in answers)
    assert emails == sorted(f"user{number}@example.com" for number in range(REGISTRATIONS))
    assert all(answer.json()["items"] == [] for answer in answers)


def test_made_up_forwarded_names_get_no_quota_of_their_own(tmp_path: Path) -> None:
    """Behind a trusted proxy, a client that writes a name instead of an address into
    X-Forwarded-For is counted with every other such client, not once per name."""
    database_url = f"sqlite:///{tmp_path / 'heroes.db'}"
    settings = {"trusted_proxies": "127.0.0.1", "login_failures_per_address": "2"}
    with live_server(database_url, tmp_path, settings=settings) as server:
        statuses = [
            httpx.post(
                f"{server.url}/login/access-token",
                data={"username": "x@example.com", "password": "a guess"},
                headers={"X-Forwarded-For": f"made-up-{number}"},
                timeout=30,
            ).status_code
            for number in range(4)
        ]
        real = httpx.post(
            f"{server.url}/login/access-token",
            data={"username": "x@example.com", "password": "a guess"},
            headers={"X-Forwarded-For": "198.51.100.7"},
            timeout=30,
        )
    assert statuses == [400, 400, 429, 429]
    assert real.status_code == 400  # a client with an address has its own quota
