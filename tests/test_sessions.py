"""Logins and their refresh tokens: opaque, stored hashed, single use, rotated, one row per
login however often it refreshes; a reused token ends its login; refreshes are limited per
login; a login ends after HEROAPI_SESSION_MAX_DAYS; logging out ends the login; and the minimum
password length setting."""

import asyncio
import functools
import hashlib
import time
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text

from heroapi import migrate
from heroapi.config import parse_database_url
from heroapi.crud import auth
from heroapi.db import Database
from heroapi.main import create_app
from heroapi.models import sessions_table
from tests.conftest import app_database, make_settings, running_app
from tests.databases import run_sync
from tests.support import PASSWORD, assert_401, bearer, create_user, make_superuser, token_of

DAY = 86400
REFRESHES_PER_MINUTE = 10  # the default


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/login/refresh", json={"refresh_token": token})


def stored_sessions(client: TestClient) -> list[dict[str, Any]]:
    async def read(database: Database) -> list[dict[str, Any]]:
        return await database.fetch_all(select(sessions_table), {})

    return app_database(client, read)


def set_sessions(client: TestClient, **values: int) -> None:
    """Change every stored login's columns (`expires_at`, `window_ends_at`...)."""

    async def write(database: Database) -> None:
        async with database.transaction() as connection:
            await connection.execute(sessions_table.update().values(**values), {})

    app_database(client, write)


class Clock:
    """The time the login routes see, moved by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("heroapi.routes.login.time", SimpleNamespace(time=clock.time))
    return clock


def test_a_refresh_token_is_rotated_and_stored_only_hashed(client: TestClient) -> None:
    create_user(client, "a@example.com")
    first = token_of(client, "a@example.com")
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    body = second.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["refresh_token"] != first["refresh_token"]
    assert client.get("/users/me", headers=bearer(body["access_token"])).status_code == 200
    [row] = stored_sessions(client)
    assert row["token_hash"] == hashlib.sha256(body["refresh_token"].encode()).hexdigest()
    for token in (first["refresh_token"], body["refresh_token"]):
        assert token not in str(row)
        assert token.startswith(f"{row['id']}.")  # each token names its login


def test_a_login_keeps_one_row_however_often_it_refreshes(client: TestClient) -> None:
    """Every spent token of a login is still recognized (see the next test) without a row per
    token: 10 refreshes of one login, then another login, leave two rows."""
    create_user(client, "a@example.com")
    token = token_of(client, "a@example.com")["refresh_token"]
    for _ in range(REFRESHES_PER_MINUTE):
        response = refresh(client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
    assert len(stored_sessions(client)) == 1
    token_of(client, "a@example.com")
    assert len(stored_sessions(client)) == 2


def test_a_reused_refresh_token_ends_its_login(client: TestClient) -> None:
    create_user(client, "a@example.com")
    stolen = token_of(client, "a@example.com")["refresh_token"]
    legitimate = refresh(client, stolen).json()["refresh_token"]
    other_login = token_of(client, "a@example.com")["refresh_token"]
    reused = refresh(client, stolen)
    assert_401(reused)
    assert reused.json() == {"detail": "Invalid or expired refresh token"}
    assert_401(refresh(client, legitimate))  # the thief's copy and the owner's both end
    assert refresh(client, other_login).status_code == 200  # another login is untouched


def test_a_token_spent_several_refreshes_ago_ends_its_login(client: TestClient) -> None:
    """The thief refreshes a copied token several times before its owner presents it: the
    owner's (long spent) token still ends the thief's login."""
    create_user(client, "a@example.com")
    copied = token_of(client, "a@example.com")["refresh_token"]
    thief = copied
    for _ in range(5):
        thief = refresh(client, thief).json()["refresh_token"]
    assert_401(refresh(client, copied))
    assert_401(refresh(client, thief))
    assert stored_sessions(client) == []


def test_logout_ends_the_login(client: TestClient) -> None:
    create_user(client, "a@example.com")
    first = token_of(client, "a@example.com")["refresh_token"]
    current = refresh(client, first).json()["refresh_token"]
    other_login = token_of(client, "a@example.com")["refresh_token"]
    response = client.post("/logout", json={"refresh_token": first})  # a spent one will do
    assert response.status_code == 200
    assert_401(refresh(client, current))
    assert refresh(client, other_login).status_code == 200
    unknown = client.post("/logout", json={"refresh_token": "never issued"})
    assert unknown.status_code == 200  # nothing to tell an attacker


# ----------------------------------------------------------------- refreshes per login


def test_refreshes_per_login_are_limited(client: TestClient) -> None:
    """A login refreshed more than HEROAPI_REFRESHES_PER_MINUTE (10) times in a minute gets 429
    with Retry-After; its token is not spent and works once the minute has passed, and the
    account's other logins are not held back."""
    create_user(client, "a@example.com")
    token = token_of(client, "a@example.com")["refresh_token"]
    other_login = token_of(client, "a@example.com")["refresh_token"]
    for _ in range(REFRESHES_PER_MINUTE):
        token = refresh(client, token).json()["refresh_token"]
    refused = refresh(client, token)
    assert refused.status_code == 429, refused.text
    assert refused.json() == {"detail": "Too many attempts; retry later"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Policy"] == '"refresh-session";q=10;w=60'
    assert refresh(client, other_login).status_code == 200
    set_sessions(client, window_ends_at=int(time.time()))  # the minute has passed
    assert refresh(client, token).status_code == 200


def test_the_refresh_limit_is_a_setting(database_url: str) -> None:
    settings = make_settings(database_url, refreshes_per_minute=2)
    with running_app(settings) as client:
        create_user(client, "a@example.com")
        token = token_of(client, "a@example.com")["refresh_token"]
        for _ in range(2):
            token = refresh(client, token).json()["refresh_token"]
        refused = refresh(client, token)
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Policy"] == '"refresh-session";q=2;w=60'
        schema = client.get("/openapi.json").json()
        assert "429" in schema["paths"]["/login/refresh"]["post"]["responses"]


def test_a_client_refreshing_as_its_access_token_expires_is_never_limited(
    client: TestClient, clock: Clock
) -> None:
    """An hour of a client that refreshes at each access token's expiry, at the shortest
    lifetime allowed (1 minute), and on a bad day twice a minute: never a 429."""
    create_user(client, "a@example.com")
    token = token_of(client, "a@example.com")["refresh_token"]
    for _ in range(120):
        clock.offset += 30
        response = refresh(client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]


# ------------------------------------------------------------------- a login's lifetime


def test_a_login_ends_after_session_max_days(database_url: str, clock: Clock) -> None:
    """However often it is refreshed, a login's last refresh token expires when the login ends
    (HEROAPI_SESSION_MAX_DAYS, 30 by default), not 14 days after its last refresh."""
    with running_app(make_settings(database_url)) as client:
        create_user(client, "a@example.com")
        token = token_of(client, "a@example.com")["refresh_token"]
        login_at = time.time()
        for _ in range(3):  # one refresh every 9 days
            clock.offset += 9 * DAY
            response = refresh(client, token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        [row] = stored_sessions(client)
        assert row["expires_at"] <= login_at + 30 * DAY + 1
        clock.offset = 30 * DAY + 1
        assert_401(refresh(client, token))
        assert stored_sessions(client) == []


def test_the_session_lifetime_is_a_setting(database_url: str, clock: Clock) -> None:
    with running_app(make_settings(database_url, session_max_days=1)) as client:
        create_user(client, "a@example.com")
        token = token_of(client, "a@example.com")["refresh_token"]
        clock.offset = DAY / 2
        token = refresh(client, token).json()["refresh_token"]
        clock.offset = DAY + 1
        assert_401(refresh(client, token))


# -------------------------------------------------------------------------- concurrency


def test_two_refreshes_racing_with_one_token_end_the_login(client: TestClient) -> None:
    """Two requests presenting one token at once, on the app's own connections: one rotates it,
    the other finds it spent, and the login ends (both copies are someone's), as when they come
    one after the other. Repeated, so both orders of the race are met."""
    create_user(client, "a@example.com")
    rate = auth.RefreshRate(REFRESHES_PER_MINUTE, 60)

    async def race(database: Database, *, token: str) -> list[auth.RefreshOutcome]:
        now = int(time.time())

        async def one() -> auth.RefreshOutcome:
            return await auth.rotate_refresh_token(
                database=database, token=token, now=now, expires_at=now + DAY, rate=rate
            )

        return list(await asyncio.gather(one(), one()))

    for _ in range(5):
        token = token_of(client, "a@example.com")["refresh_token"]
        outcomes = app_database(client, functools.partial(race, token=token))
        results = sorted(outcome.result.value for outcome in outcomes)
        assert results == ["reused", "rotated"]
        [rotated] = [outcome for outcome in outcomes if outcome.refresh_token is not None]
        assert rotated.refresh_token is not None
        assert_401(refresh(client, rotated.refresh_token))
        assert stored_sessions(client) == []


# ----------------------------------------------------------------------------- upgrading


def test_upgrading_keeps_each_logins_usable_token(empty_database_url: str) -> None:
    """0006 keeps, of each family of `refresh_tokens`, its one usable token: it goes on working
    (and its successor names the login); spent and revoked ones are gone."""
    database = parse_database_url(empty_database_url)
    migrate.upgrade(database, "0005")
    expires_at = int(time.time()) + DAY

    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def fill(connection: Connection) -> None:
        connection.execute(
            text(
                "INSERT INTO users (email, email_key, hashed_password, security_stamp) "
                "VALUES ('a@example.com', 'a@example.com', 'x', :stamp)"
            ),
            {"stamp": "0" * 32},
        )
        user_id = connection.execute(text("SELECT id FROM users")).scalar_one()
        for token, family, used, revoked in (
            ("spent", "f" * 32, True, False),
            ("usable", "f" * 32, False, False),
            ("revoked", "e" * 32, False, True),
        ):
            connection.execute(
                text(
                    "INSERT INTO refresh_tokens "
                    "(token_hash, family, user_id, security_stamp, expires_at, used, revoked) "
                    "VALUES (:hash, :family, :user, :stamp, :expires, :used, :revoked)"
                ),
                {
                    "hash": digest(token),
                    "family": family,
                    "user": user_id,
                    "stamp": "0" * 32,
                    "expires": expires_at,
                    "used": used,
                    "revoked": revoked,
                },
            )

    run_sync(database, fill)
    migrate.upgrade(database)
    rows = run_sync(
        database,
        lambda connection: [
            dict(row._mapping) for row in connection.execute(select(sessions_table))
        ],
    )
    assert [(row["id"], row["token_hash"]) for row in rows] == [("f" * 32, digest("usable"))]
    assert rows[0]["ends_at"] == expires_at
    with TestClient(create_app(make_settings(empty_database_url))) as client:
        assert_401(refresh(client, "spent"))  # gone, as it was before: nothing more ends
        response = refresh(client, "usable")
        assert response.status_code == 200, response.text
        assert response.json()["refresh_token"].startswith("f" * 32 + ".")


def test_a_password_or_role_change_ends_refresh_tokens(client: TestClient) -> None:
    user = create_user(client, "a@example.com")
    refresh_token = token_of(client, "a@example.com")["refresh_token"]
    admin = make_superuser(client, "admin@example.com")
    promoted = client.patch(f"/users/{user['id']}", json={"is_superuser": True}, headers=admin)
    assert promoted.status_code == 200
    assert_401(refresh(client, refresh_token))


def test_an_inactive_accounts_refresh_token_fails(client: TestClient) -> None:
    user = create_user(client, "a@example.com")
    refresh_token = token_of(client, "a@example.com")["refresh_token"]
    admin = make_superuser(client, "admin@example.com")
    client.patch(f"/users/{user['id']}", json={"is_active": False}, headers=admin)
    assert_401(refresh(client, refresh_token))


def test_an_expired_refresh_token_fails(client: TestClient) -> None:
    create_user(client, "a@example.com")
    refresh_token = token_of(client, "a@example.com")["refresh_token"]

    set_sessions(client, expires_at=1)
    assert_401(refresh(client, refresh_token))


def test_bad_refresh_requests_are_4xx(client: TestClient) -> None:
    bodies: list[Any] = [{}, {"refresh_token": 12}, {"refresh_token": "x" * 5000}, []]
    for body in bodies:
        response = client.post("/login/refresh", json=body)
        assert response.status_code == 422, response.text
    lone_surrogate = b'{"refresh_token": "\\ud800 not a token"}'
    headers = {"Content-Type": "application/json"}
    garbled = client.post("/login/refresh", content=lone_surrogate, headers=headers)
    assert garbled.status_code == 422
    assert_401(refresh(client, ""))


def test_an_access_token_is_not_a_refresh_token(client: TestClient) -> None:
    create_user(client, "a@example.com")
    access_token = token_of(client, "a@example.com")["access_token"]
    assert refresh(client, access_token).status_code == 422  # longer than any refresh token
    assert_401(refresh(client, access_token[:64]))


# ---------------------------------------------------------------- the minimum password length


def test_the_minimum_password_length_is_a_setting(database_url: str) -> None:
    with running_app(make_settings(database_url)) as client:
        short = client.post("/users/", json={"email": "a@example.com", "password": "seven77"})
        assert short.status_code == 422
        [error] = short.json()["detail"]
        assert error["loc"] == ["body", "password"]
        assert error["type"] == "string_too_short"
        assert "seven77" not in short.text
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert schema["UserCreate"]["properties"]["password"]["minLength"] == 8
    with running_app(make_settings(database_url, password_min_length=4)) as client:
        create_user(client, "a@example.com", "four")
        token_of(client, "a@example.com", "four")
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert schema["UserCreate"]["properties"]["password"]["minLength"] == 4
        assert schema["UpdatePassword"]["properties"]["new_password"]["minLength"] == 4
    with running_app(make_settings(database_url, password_min_length=12)) as client:
        refused = client.post("/users/", json={"email": "b@example.com", "password": PASSWORD})
        assert refused.status_code == 200  # 17 characters
        short = client.post("/users/", json={"email": "c@example.com", "password": "elevenchars"})
        assert short.status_code == 422
