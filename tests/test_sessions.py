"""Refresh tokens: opaque, stored hashed, single use, rotated; a reused one revokes its family;
logging out revokes the family; and the minimum password length setting."""

import hashlib
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from heroapi.db import Database
from heroapi.models import refresh_tokens_table
from tests.conftest import app_database, make_settings, running_app
from tests.test_auth import assert_401, bearer, make_superuser
from tests.test_security import token_of
from tests.test_users import PASSWORD, create_user


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/login/refresh", json={"refresh_token": token})


def stored_refresh_rows(client: TestClient) -> list[dict[str, Any]]:
    async def read(database: Database) -> list[dict[str, Any]]:
        return await database.fetch_all(select(refresh_tokens_table), {})

    return app_database(client, read)


def test_a_refresh_token_is_rotated_and_stored_only_hashed(client: TestClient) -> None:
    create_user(client, "a@example.com")
    first = token_of(client, "a@example.com")
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    body = second.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["refresh_token"] != first["refresh_token"]
    assert client.get("/users/me", headers=bearer(body["access_token"])).status_code == 200
    rows = stored_refresh_rows(client)
    assert len(rows) == 2
    assert len({row["family"] for row in rows}) == 1
    hashes = {row["token_hash"] for row in rows}
    for token in (first["refresh_token"], body["refresh_token"]):
        assert hashlib.sha256(token.encode()).hexdigest() in hashes
        assert all(token not in str(row) for row in rows)


def test_a_reused_refresh_token_revokes_its_whole_family(client: TestClient) -> None:
    create_user(client, "a@example.com")
    stolen = token_of(client, "a@example.com")["refresh_token"]
    legitimate = refresh(client, stolen).json()["refresh_token"]
    other_login = token_of(client, "a@example.com")["refresh_token"]
    reused = refresh(client, stolen)
    assert_401(reused)
    assert reused.json() == {"detail": "Invalid or expired refresh token"}
    assert_401(refresh(client, legitimate))  # the thief's copy and the owner's both end
    assert refresh(client, other_login).status_code == 200  # another login is untouched


def test_logout_revokes_the_family(client: TestClient) -> None:
    create_user(client, "a@example.com")
    first = token_of(client, "a@example.com")["refresh_token"]
    current = refresh(client, first).json()["refresh_token"]
    response = client.post("/logout", json={"refresh_token": first})
    assert response.status_code == 200
    assert_401(refresh(client, current))
    unknown = client.post("/logout", json={"refresh_token": "never issued"})
    assert unknown.status_code == 200  # nothing to tell an attacker


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

    async def expire(database: Database) -> None:
        async with database.transaction() as connection:
            await connection.execute(refresh_tokens_table.update().values(expires_at=1), {})

    app_database(client, expire)
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
