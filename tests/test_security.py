"""The holes an independent security review found, each reproduced as an attacker would, on every
backend; and the throttling, refresh tokens and signing key that close them."""

import asyncio
import re
import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import insert, select

from heroapi import crud
from heroapi.db import Database
from heroapi.main import create_app
from heroapi.models import app_secrets_table, items_table, users_table
from heroapi.security import Hashing, HashingBusy, PasswordHasher
from tests.conftest import app_database, make_settings, running_app
from tests.support import (
    PASSWORD,
    assert_401,
    bearer,
    create_item,
    create_user,
    login,
    make_superuser,
    stored_hash,
    table_rows,
    token_of,
)

# The key `config.py` carried before: it must never sign anything again.
PUBLISHED_KEY = "development-only-secret-key-change-me"
# An earlier scheme's hashes, at bcrypt's lowest cost: any bcrypt hash is one to replace.
OLD_HASHER = BcryptHasher(rounds=4)


def set_hash(client: TestClient, user_id: int, hashed: str) -> None:
    async def write(database: Database) -> None:
        await crud.update_user(
            database=database, user_id=user_id, changes={"hashed_password": hashed}
        )

    app_database(client, write)


# ---------------------------------------------------------------- 1. ids and tokens bound to rows


def test_a_deleted_accounts_token_never_logs_in_as_the_next_account(client: TestClient) -> None:
    first = create_user(client, "a@example.com")
    old = login(client, "a@example.com")
    assert client.delete(f"/users/{first['id']}", headers=old).status_code == 200
    second = create_user(client, "b@example.com")
    assert second["id"] != first["id"]  # ids are never handed out twice
    assert_401(client.get("/users/me", headers=old))
    assert_401(client.patch("/users/me", json={"email": "mine@example.com"}, headers=old))
    assert client.get("/users/me", headers=login(client, "b@example.com")).json() == second


def _delete_newest_user_then_create(client: TestClient) -> tuple[int, int]:
    newest = create_user(client, "newest@example.com")["id"]
    client.delete(f"/users/{newest}", headers=login(client, "newest@example.com"))
    return newest, create_user(client, "again@example.com")["id"]


def _delete_newest_hero_then_create(client: TestClient) -> tuple[int, int]:
    hero = {"name": "h", "secret_name": "s"}
    newest = client.post("/heroes/", json=hero).json()["id"]
    client.delete(f"/heroes/{newest}")
    return newest, client.post("/heroes/", json=hero).json()["id"]


def _delete_newest_item_then_create(client: TestClient) -> tuple[int, int]:
    owner = create_user(client, "owner@example.com")["id"]
    newest = create_item(client, owner, "newest")["id"]

    async def remove(database: Database) -> None:  # items have no DELETE route yet
        async with database.transaction() as connection:
            await connection.execute(items_table.delete().where(items_table.c.id == newest), {})

    app_database(client, remove)
    return newest, create_item(client, owner, "again")["id"]


@pytest.mark.parametrize(
    "delete_newest_then_create",
    [
        _delete_newest_user_then_create,
        _delete_newest_hero_then_create,
        _delete_newest_item_then_create,
    ],
    ids=["users", "heroes", "items"],
)
def test_no_id_is_reused_after_the_newest_row_is_deleted(
    client: TestClient, delete_newest_then_create: Any
) -> None:
    create_user(client, "first@example.com")
    client.post("/heroes/", json={"name": "first", "secret_name": "s"})
    deleted, created = delete_newest_then_create(client)
    assert created > deleted


def test_a_token_names_one_row_not_an_id(client: TestClient) -> None:
    """A row put back by hand (a restore, an operator) under the old id is not the old account."""
    user = create_user(client, "a@example.com")
    old = login(client, "a@example.com")
    assert client.delete(f"/users/{user['id']}", headers=old).status_code == 200

    async def restore(database: Database) -> None:
        async with database.transaction() as connection:
            values = {
                "id": user["id"],
                "email": "intruder@example.com",
                "email_key": "intruder@example.com",
                "hashed_password": "x",
                "security_stamp": "0" * 32,
            }
            await connection.execute(insert(users_table).values(**values), {})

    app_database(client, restore)
    assert_401(client.get("/users/me", headers=old))


# -------------------------------------------------------- 2. no published key signs anything


def forged_superuser_token(user_id: int, stamp: str, key: str) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "gen": 0, "iat": now, "exp": now + 600, "stamp": stamp}
    claims |= {"iss": "heroapi", "aud": "heroapi"}
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "at+jwt"})


@pytest.mark.parametrize("auth_mode", ["open", "required"])
def test_the_published_key_signs_nothing(database_url: str, auth_mode: str) -> None:
    with running_app(make_settings(database_url, auth_mode=auth_mode)) as client:
        make_superuser(client, "admin@example.com")
        [admin] = table_rows(client, users_table)
        forged = forged_superuser_token(admin["id"], admin["security_stamp"], PUBLISHED_KEY)
        assert_401(client.get("/users/me", headers=bearer(forged)))
        assert_401(client.patch(f"/users/{admin['id']}", json={}, headers=bearer(forged)))


def test_the_generated_key_is_shared_and_survives_restarts(database_url: str) -> None:
    settings = make_settings(database_url)
    with running_app(settings) as client:
        create_user(client, "a@example.com")
        token = token_of(client, "a@example.com")["access_token"]
        [stored] = table_rows_by_name(client)
        assert len(stored["value"]) >= 43  # 256 random bits
        assert stored["value"] != PUBLISHED_KEY
    # Another process (a worker, a replica, a restart) on the same database accepts it.
    with TestClient(create_app(settings)) as other:
        assert other.get("/users/me", headers=bearer(token)).status_code == 200
    # A configured key wins over the stored one.
    own_key = make_settings(database_url, secret_key="an operator's own key, long enough")
    with TestClient(create_app(own_key)) as configured:
        assert_401(configured.get("/users/me", headers=bearer(token)))


def table_rows_by_name(client: TestClient) -> list[dict[str, Any]]:
    async def read(database: Database) -> list[dict[str, Any]]:
        return await database.fetch_all(select(app_secrets_table), {})

    return app_database(client, read)


# -------------------------------------------------------- 3. rehashing never undoes a change


def test_a_rehash_at_login_never_undoes_a_password_change(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = create_user(client, "a@example.com")
    set_hash(client, user["id"], OLD_HASHER.hash(PASSWORD))
    passwords: PasswordHasher = client.app.state.passwords  # type: ignore[attr-defined]
    verify = Hashing.verify

    async def verify_while_the_password_changes(
        self: Hashing, password: str, hashed: str | None
    ) -> tuple[bool, str | None]:
        result = await verify(self, password, hashed)
        database: Database = client.app.state.database  # type: ignore[attr-defined]
        # The password change that lands while the login hashes.
        changes = {"hashed_password": await passwords.hash("the new password")}
        await crud.update_user(database=database, user_id=user["id"], changes=changes)
        return result

    monkeypatch.setattr(Hashing, "verify", verify_while_the_password_changes)
    token_of(client, "a@example.com")
    monkeypatch.undo()
    assert stored_hash(client, "a@example.com").startswith("$argon2id$")
    token_of(client, "a@example.com", "the new password")  # the change stands
    refused = client.post(
        "/login/access-token", data={"username": "a@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 400


# ---------------------------------------------------------------- 4. bcrypt and long passwords


def test_a_long_password_against_a_bcrypt_hash_is_a_400(client: TestClient) -> None:
    user = create_user(client, "a@example.com")
    headers = login(client, "a@example.com")
    set_hash(client, user["id"], OLD_HASHER.hash(PASSWORD))
    long_password = "é" * 40  # 80 bytes
    response = client.post(
        "/login/access-token", data={"username": "a@example.com", "password": long_password}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Incorrect email or password"}
    headers = login(client, "a@example.com")  # the bcrypt hash still verifies (and is upgraded)
    set_hash(client, user["id"], OLD_HASHER.hash(PASSWORD))
    headers = login(client, "a@example.com")
    changed = client.post(
        "/users/me/password",
        json={"current_password": long_password, "new_password": "something new"},
        headers=headers,
    )
    assert changed.status_code == 400
    assert changed.json() == {"detail": "Incorrect password"}


# ---------------------------------------------------------------- 5. changes revoke tokens


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"is_active": False}, {"is_active": True}),
        ({"is_superuser": True}, {"is_superuser": False}),
        ({"password": "another password"}, {"password": PASSWORD}),
    ],
    ids=["reactivated", "promoted-demoted", "password-back"],
)
def test_a_change_of_role_activation_or_password_revokes_tokens(
    client: TestClient, first: dict[str, Any], then: dict[str, Any]
) -> None:
    user = create_user(client, "a@example.com")
    old = login(client, "a@example.com")
    admin = make_superuser(client, "admin@example.com")
    for change in (first, then):
        response = client.patch(f"/users/{user['id']}", json=change, headers=admin)
        assert response.status_code == 200, response.text
    assert_401(client.get("/users/me", headers=old))
    assert client.get("/users/me", headers=login(client, "a@example.com")).status_code == 200


def test_an_email_change_keeps_tokens(client: TestClient) -> None:
    create_user(client, "a@example.com")
    headers = login(client, "a@example.com")
    assert client.patch("/users/me", json={"email": "b@example.com"}, headers=headers).is_success
    assert client.get("/users/me", headers=headers).status_code == 200


# ---------------------------------------------------------------- 6 and 7. one address, one key


def test_a_decomposed_unicode_address_logs_in(client: TestClient) -> None:
    create_user(client, "ze\u0301x@example.com")
    for typed in ("ze\u0301x@example.com", "z\u00e9x@example.com", "Z\u00c9X@Example.COM"):
        token_of(client, typed)


def test_accents_and_trailing_spaces_make_other_addresses(client: TestClient) -> None:
    create_user(client, "jose@example.com")
    create_user(client, "jos\u00e9@example.com")  # another address, another account
    for typed in ("jose@example.com ", "jos\u00e9@example.com", "jose@example.com\u00a0"):
        response = client.post(
            "/login/access-token", data={"username": typed, "password": "wrong password"}
        )
        assert response.status_code == 400
    me = client.get("/users/me", headers=login(client, "jos\u00e9@example.com")).json()
    assert me["email"] == "jos\u00e9@example.com"
    refused = client.post(
        "/login/access-token", data={"username": "jose@example.com  ", "password": PASSWORD}
    )
    assert refused.status_code == 400


# ---------------------------------------------------------------- hashing in a bounded executor


def test_hashing_past_its_queue_is_refused_at_once() -> None:
    async def flood() -> tuple[int, int]:
        passwords = PasswordHasher(workers=1, queue=1, wait=10)
        try:
            results = await asyncio.gather(
                *(passwords.hash(f"password {n}") for n in range(6)), return_exceptions=True
            )
        finally:
            passwords.close()
        busy = sum(isinstance(result, HashingBusy) for result in results)
        return busy, sum(isinstance(result, str) for result in results)

    busy, hashed = asyncio.run(flood())
    assert (busy, hashed) == (4, 2)


def test_a_row_loaded_without_a_stamp_gets_a_random_one(client: TestClient) -> None:
    """Bulk loads and hand-inserted rows name only the tutorial's columns."""
    hashed = OLD_HASHER.hash(PASSWORD)

    async def load(database: Database) -> None:
        async with database.transaction() as connection:
            for email in ("loaded1@example.com", "loaded2@example.com"):
                row = {"email": email, "email_key": email, "hashed_password": hashed}
                await connection.execute(insert(users_table).values(**row), {})

    app_database(client, load)
    stamps = [row["security_stamp"] for row in table_rows(client, users_table)]
    assert len(set(stamps)) == 2
    assert all(re.fullmatch("[0-9a-f]{32}", stamp) for stamp in stamps)
    headers = login(client, "loaded1@example.com")
    assert client.get("/users/me", headers=headers).json()["email"] == "loaded1@example.com"
