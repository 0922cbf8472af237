"""Throttling what costs a password hash (logins, registrations, password changes), counted in
the database before any hashing; and the turns at the hashing workers."""

import asyncio
import concurrent.futures
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import insert, select

from heroapi.config import Settings
from heroapi.crud import auth
from heroapi.db import Database
from heroapi.main import create_app
from heroapi.models import rate_limits_table
from heroapi.security import Hashing, PasswordHasher
from heroapi.throttle import Throttle
from tests.conftest import app_database, make_settings, running_app
from tests.support import PASSWORD, create_user, login, make_superuser


def attempt(
    client: TestClient, email: str, password: str = "wrong password", **headers: str
) -> Any:
    return client.post(
        "/login/access-token", data={"username": email, "password": password}, headers=headers
    )


def assert_429(response: Any, limit: str, quota: int, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {"detail": "Too many attempts; retry later"}
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window
    assert response.headers["RateLimit-Policy"] == f'"{limit}";q={quota};w={window}'
    assert response.headers["RateLimit"] == f'"{limit}";r=0;t={retry_after}'


@contextmanager
def app_from(settings: Settings, address: str = "203.0.113.7") -> Iterator[TestClient]:
    """The app, its tables emptied, seen from a client at `address`."""
    with running_app(settings):
        pass  # empties the tables
    with TestClient(create_app(settings), client=(address, 40000)) as client:
        yield client


@contextmanager
def counting_hashes(client: TestClient) -> Iterator[list[str]]:
    """Every password the app verifies while in the block."""
    verify, seen = Hashing.verify, []

    async def counted(self: Hashing, password: str, hashed: str | None) -> tuple[bool, str | None]:
        seen.append(password)
        return await verify(self, password, hashed)

    Hashing.verify = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        Hashing.verify = verify  # type: ignore[method-assign]


def test_failed_logins_per_account_are_throttled_before_any_hashing(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_account=3)
    with app_from(settings) as client:
        create_user(client, "a@example.com")
        with counting_hashes(client) as hashed:
            for _ in range(3):
                assert attempt(client, "a@example.com").status_code == 400
            assert len(hashed) == 3
            # The limit holds for every spelling of the address, and for the right password.
            assert_429(attempt(client, "A@Example.com"), "login-account", 3, 900)
            assert_429(attempt(client, "a@example.com", PASSWORD), "login-account", 3, 900)
            assert len(hashed) == 3  # refused before any hashing
        # Another account from the same address is not affected.
        create_user(client, "b@example.com")
        login(client, "b@example.com")


def test_a_successful_login_starts_the_account_over(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_account=3)
    with app_from(settings) as client:
        create_user(client, "a@example.com")
        for _ in range(2):
            assert attempt(client, "a@example.com").status_code == 400
        login(client, "a@example.com")
        for _ in range(3):
            assert attempt(client, "a@example.com").status_code == 400
        assert attempt(client, "a@example.com").status_code == 429


def test_failed_logins_per_address_are_throttled(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_address=3)
    with app_from(settings) as client:
        for number in range(3):
            assert attempt(client, f"guess{number}@example.com").status_code == 400
        assert_429(attempt(client, "guess9@example.com"), "login-address", 3, 900)
        # X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
        spoofed = attempt(client, "guess9@example.com", **{"X-Forwarded-For": "198.51.100.1"})
        assert spoofed.status_code == 429
    with app_from(settings, "203.0.113.8") as other:  # another address is not affected
        assert attempt(other, "guess9@example.com").status_code == 400


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(database_url: str) -> None:
    settings = make_settings(
        database_url, login_failures_per_address=2, trusted_proxies="10.0.0.0/8"
    )
    with app_from(settings, "10.1.2.3") as proxy:

        def through(client_address: str) -> int:
            forwarded = {"X-Forwarded-For": f"{client_address}, 10.9.9.9"}
            status: int = attempt(proxy, "x@example.com", **forwarded).status_code
            return status

        assert [through("198.51.100.1") for _ in range(3)] == [400, 400, 429]
        assert through("198.51.100.2") == 400  # each client behind the proxy has its own count


def test_ipv6_clients_are_counted_by_their_64(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_address=2)
    with app_from(settings, "2001:db8:1:2::1") as client:
        assert [attempt(client, "x@example.com").status_code for _ in range(2)] == [400, 400]

    def from_address(address: str) -> int:
        with TestClient(create_app(settings), client=(address, 1)) as client:
            status: int = attempt(client, "x@example.com").status_code
            return status

    assert from_address("2001:db8:1:2:ffff::9") == 429  # the same /64
    assert from_address("2001:db8:1:3::1") == 400


def test_counts_are_shared_by_every_process_on_the_database(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_account=2)
    with app_from(settings) as first:
        create_user(first, "a@example.com")
        assert attempt(first, "a@example.com").status_code == 400
        with TestClient(create_app(settings), client=("198.51.100.5", 1)) as second:
            assert attempt(second, "a@example.com").status_code == 400
            assert attempt(second, "a@example.com").status_code == 429
        assert attempt(first, "a@example.com").status_code == 429


def test_a_window_ends_and_ended_windows_are_deleted(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_account=1, throttle_window=4)
    with app_from(settings) as client:

        async def add_ended_window(database: Database) -> None:
            async with database.transaction() as connection:
                row = {"key": "login-address:192.0.2.1", "hits": 99, "reset_at": 1}
                await connection.execute(insert(rate_limits_table).values(**row), {})

        async def keys(database: Database) -> list[str]:
            rows = await database.fetch_all(select(rate_limits_table.c.key), {})
            return sorted(row["key"] for row in rows)

        app_database(client, add_ended_window)
        create_user(client, "a@example.com")
        assert attempt(client, "a@example.com").status_code == 400
        assert attempt(client, "a@example.com").status_code == 429
        assert "login-address:192.0.2.1" not in app_database(client, keys)
        time.sleep(4.1)
        assert attempt(client, "a@example.com").status_code == 400


def test_registrations_per_address_are_throttled(database_url: str) -> None:
    settings = make_settings(database_url, registrations_per_address=2)
    with app_from(settings) as client:
        create_user(client, "a@example.com")
        create_user(client, "b@example.com")
        third = client.post("/users/", json={"email": "c@example.com", "password": PASSWORD})
        assert_429(third, "register-address", 2, 900)


def test_wrong_current_passwords_are_throttled(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_account=2)
    with app_from(settings) as client:
        create_user(client, "a@example.com")
        headers = login(client, "a@example.com")
        body = {"current_password": "not my password", "new_password": "a new password"}
        statuses = [
            client.post("/users/me/password", json=body, headers=headers).status_code
            for _ in range(3)
        ]
        assert statuses == [400, 400, 429]
        # Counted with the account's logins: the next login is refused too.
        assert attempt(client, "a@example.com", PASSWORD).status_code == 429


def test_hashing_past_its_queue_is_a_fast_503(database_url: str) -> None:
    settings = make_settings(
        database_url,
        password_hash_workers=1,
        password_hash_queue=0,
    )
    with app_from(settings) as client:
        create_user(client, "a@example.com")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda _: attempt(client, "a@example.com"), range(6)))
    statuses = sorted(response.status_code for response in responses)
    assert 400 in statuses
    assert 503 in statuses, statuses
    busy = [response for response in responses if response.status_code == 503]
    assert all(response.headers["Retry-After"] == "1" for response in busy)
    assert all(re.search("retry", response.json()["detail"]) for response in busy)


def test_concurrent_first_attempts_each_get_their_own_count(client: TestClient) -> None:
    """Two first attempts at once must neither deadlock (InnoDB's gap locks) nor share a count."""

    async def burst(database: Database) -> list[int]:
        now = int(time.time())
        hits = await asyncio.gather(
            *(auth.count_hit(database=database, key="burst", now=now, window=60) for _ in range(16))
        )
        return sorted(hit.count for hit in hits)

    assert app_database(client, burst) == list(range(1, 17))


def test_a_flood_from_one_address_waits_its_turns_and_never_takes_them_from_others(
    database_url: str,
) -> None:
    """Hashes are taken in turns between addresses: with both workers busy with one address's
    flood, another address's login is next, not after the flood."""
    settings = make_settings(
        database_url,
        password_hash_workers=1,
        trusted_proxies="203.0.113.7",  # the test client: its X-Forwarded-For names the client
    )
    flooder, other = {"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "198.51.100.2"}
    with app_from(settings) as client:
        create_user(client, "b@example.com")
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            flood = [pool.submit(attempt, client, f"x{n}@example.com", **flooder) for n in range(8)]
            time.sleep(0.3)  # the flood is waiting
            with counting_hashes(client) as hashed:
                real = pool.submit(attempt, client, "b@example.com", PASSWORD, **other)
                assert real.result().status_code == 200
                # The real login was among the first hashes after it asked (the one running when
                # it came, at most one of the flood's whose turn came first, then its own), not
                # after the flood's eight.
                assert PASSWORD in hashed[:3], hashed
            statuses = [future.result().status_code for future in flood]
    assert statuses == [400] * 8  # the flood waited, and was answered, not refused


def test_a_refused_key_is_answered_without_writing(database_url: str) -> None:
    """Once past its quota, a flood's further attempts cost no database write."""
    settings = make_settings(database_url, login_failures_per_address=2)
    with app_from(settings) as client:

        async def hits(database: Database) -> list[int]:
            rows = await database.fetch_all(select(rate_limits_table.c.hits), {})
            return sorted(row["hits"] for row in rows)

        statuses = [attempt(client, f"x{n}@example.com").status_code for n in range(3)]
        assert statuses == [400, 400, 429]
        before = app_database(client, hits)
        assert [attempt(client, "y@example.com").status_code for _ in range(5)] == [429] * 5
        assert app_database(client, hits) == before


def test_a_refused_address_is_answered_before_its_request_is_read(database_url: str) -> None:
    """Past its quota, an address's login and registration are 429 before FastAPI reads the body
    (a body that would be a 422 is a 429), so a flood costs no parsing."""
    settings = make_settings(
        database_url, login_failures_per_address=1, registrations_per_address=1
    )
    with app_from(settings) as client:
        assert [attempt(client, f"x{n}@example.com").status_code for n in range(2)] == [400, 429]
        refused = client.post("/login/access-token", content=b"\xff not a form")
        assert_429(refused, "login-address", 1, settings.throttle_window)
        create_user(client, "a@example.com")
        assert client.post("/users/", json={}).status_code == 422  # not yet refused
        over = client.post("/users/", json={"email": "b@example.com", "password": PASSWORD})
        assert_429(over, "register-address", 1, settings.throttle_window)
        refused = client.post("/users/", json=[1, 2, 3])
        assert_429(refused, "register-address", 1, settings.throttle_window)


def test_a_client_that_keeps_trying_past_its_limit_waits_for_its_429s(database_url: str) -> None:
    """Each further attempt from an address known to be past its quota is held back
    `HEROAPI_THROTTLE_HOLD` seconds; its first 429, and others' answers, are not."""
    hold = 1.0  # an answer not held back comes well within it, even on a loaded machine
    settings = make_settings(database_url, login_failures_per_address=1, throttle_hold=hold)
    with app_from(settings) as client:

        def timed(**headers: str) -> tuple[int, float]:
            started = time.perf_counter()
            status = attempt(client, "x@example.com", **headers).status_code
            return status, time.perf_counter() - started

        assert timed()[0] == 400
        first, first_time = timed()
        assert first == 429
        assert first_time < hold * 0.8
        again, again_time = timed()
        assert again == 429
        assert again_time >= hold
        create_user(client, "b@example.com")
        started = time.perf_counter()
        assert client.get("/heroes/").status_code == 200
        assert time.perf_counter() - started < hold * 0.8


# ---------------------------------------------------------------- the tutorial's answers, defaults


def test_registrations_from_one_address_are_not_counted_by_default(client: TestClient) -> None:
    """A seeding script, a test suite or a backend registering for its users is one address."""
    answers = [
        client.post("/users/", json={"email": f"u{n}@example.com", "password": PASSWORD})
        for n in range(30)
    ]
    assert [answer.status_code for answer in answers] == [200] * 30
    assert [answer.json()["email"] for answer in answers] == [
        f"u{n}@example.com" for n in range(30)
    ]


def test_a_superuser_is_never_throttled_for_creating_accounts(database_url: str) -> None:
    settings = make_settings(database_url, auth_mode="required", registrations_per_address=2)
    with app_from(settings) as client:
        headers = make_superuser(client, "admin@example.com")
        answers = [
            client.post(
                "/users/",
                json={"email": f"u{n}@example.com", "password": PASSWORD},
                headers=headers,
            ).status_code
            for n in range(5)
        ]
    assert answers == [200] * 5


def test_sixteen_concurrent_registrations_of_one_email_get_the_tutorials_answers(
    client: TestClient,
) -> None:
    body = {"email": "racer@example.com", "password": PASSWORD}
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: client.post("/users/", json=body), range(16)))
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * 15
    refused = [answer.json() for answer in answers if answer.status_code == 400]
    assert refused == [{"detail": "Email already registered"}] * 15


def test_sixteen_concurrent_logins_from_one_address_all_succeed(client: TestClient) -> None:
    """Users behind one NAT address, or one backend logging its users in."""
    emails = [f"u{n}@example.com" for n in range(16)]
    for email in emails:
        create_user(client, email)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda email: attempt(client, email, PASSWORD), emails))
    assert [answer.status_code for answer in answers] == [200] * 16, [a.text for a in answers]
    assert all(answer.json()["token_type"] == "bearer" for answer in answers)


# ---------------------------------------------------------------- 503s for capacity count nowhere


def test_a_hashing_503_counts_against_neither_address_nor_account(database_url: str) -> None:
    settings = make_settings(database_url, password_hash_workers=1, password_hash_queue=0)
    with app_from(settings) as client:
        create_user(client, "a@example.com")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: attempt(client, "a@example.com"), range(6)))

        async def hits(database: Database) -> dict[str, int]:
            rows = await database.fetch_all(select(rate_limits_table), {})
            counted = {}
            for row in rows:
                key = row["key"]  # bytes on MariaDB (a binary column)
                limit = (key.decode() if isinstance(key, bytes) else key).split(":")[0]
                counted[limit] = row["hits"]
            return counted

        counted = app_database(client, hits)
    statuses = [answer.status_code for answer in answers]
    assert 503 in statuses, statuses
    failures = statuses.count(400)
    assert counted == {"login-address": failures, "login-account": failures}


# ---------------------------------------------------------------- which address is the client


def key_of(address: str, forwarded: str | None = None, trusted: str = "") -> str:
    """The key the throttle counts a request from peer `address` against."""
    settings = make_settings("sqlite:///unused.db", trusted_proxies=trusted)
    throttle = Throttle(cast(Database, None), settings, cast(PasswordHasher, None))
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return throttle.client_address({"type": "http", "client": (address, 1), "headers": headers})


def test_ipv6_addresses_that_carry_an_ipv4_one_are_that_address() -> None:
    assert key_of("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4-mapped (a dual-stack listener)
    assert key_of("::ffff:203.0.113.8") == "203.0.113.8"
    assert key_of("2002:cb00:7107::1") == "203.0.113.7"  # 6to4
    assert key_of("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "192.0.2.45"  # Teredo's client
    assert key_of("2001:db8:1:2::1") == "2001:db8:1:2::/64"


def test_forwarded_hops_and_proxies_are_unwrapped_too() -> None:
    # A mapped proxy peer is the IPv4 proxy it carries, and so trusted.
    assert key_of("::ffff:10.1.2.3", "::ffff:198.51.100.1", "10.0.0.0/8") == "198.51.100.1"
    assert key_of("10.1.2.3", "198.51.100.1, ::ffff:10.9.9.9", "10.0.0.0/8") == "198.51.100.1"
    assert key_of("10.1.2.3", "[::ffff:198.51.100.2]:4711", "10.0.0.0/8") == "198.51.100.2"
    assert key_of("::ffff:10.1.2.3", "198.51.100.3", "::ffff:10.0.0.0/104") == "198.51.100.3"


def test_ipv4_clients_of_a_dual_stack_listener_have_a_quota_each(database_url: str) -> None:
    settings = make_settings(database_url, login_failures_per_address=2)
    with app_from(settings, "::ffff:203.0.113.7") as client:
        assert [attempt(client, "x@example.com").status_code for _ in range(3)] == [400, 400, 429]
    with TestClient(create_app(settings), client=("::ffff:203.0.113.8", 1)) as other:
        assert attempt(other, "x@example.com").status_code == 400
    with TestClient(create_app(settings), client=("203.0.113.7", 1)) as same:
        assert attempt(same, "x@example.com").status_code == 429  # one client, however written


def test_ipv4_clients_behind_a_proxy_that_reports_mapped_addresses(database_url: str) -> None:
    settings = make_settings(
        database_url, login_failures_per_address=2, trusted_proxies="10.0.0.0/8"
    )
    with app_from(settings, "::ffff:10.1.2.3") as proxy:

        def through(client_address: str) -> int:
            forwarded = {"X-Forwarded-For": f"::ffff:{client_address}"}
            status: int = attempt(proxy, "x@example.com", **forwarded).status_code
            return status

        assert [through("198.51.100.1") for _ in range(3)] == [400, 400, 429]
        assert through("198.51.100.2") == 400


def test_made_up_client_names_share_one_quota(database_url: str) -> None:
    """Behind a trusted proxy, `heroapi serve` (uvicorn) takes the right-most untrusted
    X-Forwarded-For entry as the client, whatever it is: a made-up name is no fresh quota."""
    settings = make_settings(database_url, login_failures_per_address=2)

    def from_name(name: str) -> int:
        with TestClient(create_app(settings), client=(name, 0)) as client:
            status: int = attempt(client, "x@example.com").status_code
            return status

    with running_app(settings):
        pass  # empties the tables
    assert [from_name(f"made-up-{n}") for n in range(3)] == [400, 400, 429]


def test_the_throttled_log_line_names_no_account(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(database_url, login_failures_per_account=1)
    with app_from(settings) as client, caplog.at_level(logging.WARNING, "heroapi"):
        create_user(client, "secret.person@example.com")
        assert attempt(client, "secret.person@example.com").status_code == 400
        assert attempt(client, "secret.person@example.com").status_code == 429
    [line] = [record.getMessage() for record in caplog.records if "throttled" in record.msg]
    assert "secret" not in line
    assert line == "throttled: login-account from 203.0.113.7"


def test_the_removed_per_address_hash_setting_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError, match="HEROAPI_PASSWORD_HASH_QUEUE"):
        make_settings("sqlite:///unused.db", password_hashes_per_address=1)
