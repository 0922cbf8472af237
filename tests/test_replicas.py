"""Read replicas (HEROAPI_DATABASE_REPLICA_URLS) on a real primary and streaming replica of the
suite's own (`tests/replication.py`).

Which server answered a read is told by what it saw: with the replica's replay paused, a row
changed on the primary still has its old value on the replica.
"""

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from heroapi.config import Settings
from tests.conftest import make_settings, running_app
from tests.replication import Replication, replication
from tests.server import live_server
from tests.support import HERO

__all__ = ["replication"]  # the fixture, used by name

MAX_LAG = 2.0


def replica_settings(replication: Replication, **overrides: Any) -> Settings:
    return make_settings(
        replication.primary.url,
        database_replica_urls=[replication.replica.url],
        replica_max_lag=MAX_LAG,
        **overrides,
    )


@pytest.fixture
def client(replication: Replication) -> Iterator[TestClient]:
    """The app on the primary with the replica, replay running, tables emptied."""
    asyncio.run(replication.replica.query("SELECT pg_wal_replay_resume()"))
    with running_app(replica_settings(replication)) as test_client:
        asyncio.run(replication.wait_for_replay())
        wait_until(lambda: replica_health(test_client)["state"] == "serving")
        yield test_client
    asyncio.run(replication.replica.query("SELECT pg_wal_replay_resume()"))


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not so within {timeout} s"
        time.sleep(0.05)


def replica_health(client: TestClient) -> dict[str, Any]:
    answer = client.get("/health/ready")
    assert answer.status_code == 200, answer.text
    replicas: list[dict[str, Any]] = answer.json()["replicas"]
    assert [replica["replica"] for replica in replicas] == [0]
    return replicas[0]


def metric(client: TestClient, name: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^{name}{{replica="0"}} (\S+)$', text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


def rename_on_primary(replication: Replication, hero_id: int, name: str) -> None:
    """A write by someone else (not this app), straight to the primary."""
    asyncio.run(replication.primary.query("UPDATE hero SET name = $1 WHERE id = $2", name, hero_id))


def pause_replay(replication: Replication) -> None:
    asyncio.run(replication.replica.query("SELECT pg_wal_replay_pause()"))


def resume_replay(replication: Replication) -> None:
    asyncio.run(replication.replica.query("SELECT pg_wal_replay_resume()"))


@pytest.mark.processes
def test_reads_go_to_a_replica_within_the_max_lag_and_to_the_primary_past_it(
    client: TestClient, replication: Replication
) -> None:
    hero = client.post("/heroes/", json=HERO).json()
    asyncio.run(replication.wait_for_replay())
    # An idle primary: its position stands still, and so does the replica's lag (no growth).
    time.sleep(MAX_LAG + 0.5)
    assert replica_health(client)["state"] == "serving"

    pause_replay(replication)
    rename_on_primary(replication, hero["id"], "Changed")
    # The replica has not replayed it and is within the max lag: it answers, with the old name.
    assert client.get(f"/heroes/{hero['id']}").json()["name"] == "Deadpond"

    # Past the max lag the primary answers; health and metrics say why, by index only.
    wait_until(lambda: replica_health(client)["state"] == "behind")
    assert client.get(f"/heroes/{hero['id']}").json()["name"] == "Changed"
    assert client.get("/heroes/").json()[0]["name"] == "Changed"
    health = client.get("/health/ready").text
    assert replica_health(client)["lag_seconds"] > MAX_LAG
    assert metric(client, "heroapi_replica_up") == 1
    assert metric(client, "heroapi_replica_serving") == 0
    assert metric(client, "heroapi_replica_lag_seconds") > MAX_LAG
    assert str(replication.replica.port) not in health + client.get("/metrics").text

    # Replay resumed: the replica catches up and serves again, which a second paused change
    # shows (the old name is only the replica's).
    resume_replay(replication)
    wait_until(lambda: replica_health(client)["state"] == "serving")
    assert replica_health(client)["lag_seconds"] <= MAX_LAG
    assert metric(client, "heroapi_replica_serving") == 1
    pause_replay(replication)
    rename_on_primary(replication, hero["id"], "Changed again")
    assert client.get(f"/heroes/{hero['id']}").json()["name"] == "Changed"


@pytest.mark.processes
def test_a_request_reads_what_it_wrote_from_the_primary(
    client: TestClient, replication: Replication
) -> None:
    user = client.post("/users/", json={"email": "rw@example.com", "password": "p" * 12}).json()
    asyncio.run(replication.wait_for_replay())
    form = {"username": "rw@example.com", "password": "p" * 12}
    token = client.post("/login/access-token", data=form).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    pause_replay(replication)

    # PATCH /users/me writes, then reads the account back outside the transaction: that read
    # must not go to the replica, which has not replayed the write.
    changed = client.patch("/users/me", json={"email": "new@example.com"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "new@example.com"

    # A later request that did not write reads from the replica (the documented limit: reads
    # see another request's writes once the replica has replayed them).
    assert client.get(f"/users/{user['id']}").json()["email"] == "rw@example.com"


@pytest.mark.processes  # the replication fixture starts a PostgreSQL primary and replica
def test_security_checks_read_the_primary(client: TestClient, replication: Replication) -> None:
    """A revoked token and a changed password stop working at once, even while the replica
    that serves reads has not replayed the change."""
    client.post("/users/", json={"email": "sec@example.com", "password": "p" * 12})
    form = {"username": "sec@example.com", "password": "p" * 12}
    token = client.post("/login/access-token", data=form).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    asyncio.run(replication.wait_for_replay())
    pause_replay(replication)
    changed = client.post(
        "/users/me/password",
        json={"current_password": "p" * 12, "new_password": "q" * 12},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert client.get("/users/me", headers=headers).status_code == 401
    assert client.post("/login/access-token", data=form).status_code == 400
    new_form = {"username": "sec@example.com", "password": "q" * 12}
    assert client.post("/login/access-token", data=new_form).status_code == 200


@pytest.mark.processes
def test_a_replica_stopped_while_requests_flow_fails_no_request(
    replication: Replication, tmp_path: Path
) -> None:
    resume_replay(replication)
    settings = {"database_replica_urls": replication.replica.url, "replica_max_lag": "2"}
    with live_server(replication.primary.url, tmp_path, settings=settings) as server:
        hero = httpx.post(f"{server.url}/heroes/", json=HERO).json()
        user = httpx.post(
            f"{server.url}/users/", json={"email": "stop@example.com", "password": "p" * 12}
        ).json()
        asyncio.run(replication.wait_for_replay())

        def state() -> str:
            replicas = httpx.get(f"{server.url}/health/ready").json()["replicas"]
            return str(replicas[0]["state"])

        wait_until(lambda: state() == "serving")
        paths = [f"/heroes/{hero['id']}", f"/users/{user['id']}", "/heroes/", "/users/"]
        statuses = asyncio.run(_read_while_stopping(server.url, paths, replication))
        assert len(statuses) == 200
        assert set(statuses) == {200}, {code: statuses.count(code) for code in set(statuses)}
        assert state() == "down"

        # Back up, it serves again once a check answers.
        replication.replica.start()
        wait_until(lambda: state() == "serving", timeout=20)


async def _read_while_stopping(url: str, paths: list[str], replication: Replication) -> list[int]:
    """200 reads from 8 clients over ~3 s; the replica is stopped after the first 50."""
    statuses: list[int] = []
    fifty_answered = asyncio.Event()

    async def reader(client: httpx.AsyncClient, number: int) -> None:
        for request in range(25):
            answer = await client.get(paths[(number + request) % len(paths)])
            statuses.append(answer.status_code)
            if len(statuses) >= 50:
                fifty_answered.set()
            await asyncio.sleep(0.1)

    async def stopper() -> None:
        await fifty_answered.wait()
        await asyncio.to_thread(replication.replica.stop)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(stopper(), *(reader(client, number) for number in range(8)))
    return statuses


def test_replica_urls_are_comma_separated_postgresql_urls() -> None:
    primary = "postgresql://app@db.example/heroapi"
    settings = make_settings(
        primary,
        database_replica_urls="postgresql://app@r0.example/heroapi, postgresql://app@r1/heroapi",
    )
    assert len(settings.database_replica_urls) == 2
    assert make_settings(primary).database_replica_urls == []
    with pytest.raises(ValidationError, match="replica 1 is not a postgresql:// database URL"):
        make_settings(
            primary,
            database_replica_urls="postgresql://r0/heroapi,mysql://r1/heroapi",
        )
    with pytest.raises(ValidationError, match="replica_max_lag"):
        make_settings(primary, replica_max_lag=0.5)
    with pytest.raises(ValidationError, match="needs a PostgreSQL DATABASE_URL"):
        make_settings("sqlite:///heroapi.db", database_replica_urls="postgresql://r0/heroapi")
