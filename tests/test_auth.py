"""Login, tokens, password changes, superusers, and the `required` auth mode, on every backend."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from pydantic import ValidationError

from heroapi import crud
from heroapi.db import Database
from heroapi.main import create_app
from heroapi.models import users_table
from heroapi.security import UNKNOWN_USER_HASH, password_hash
from tests.conftest import app_database, make_settings, running_app
from tests.server import without_settings
from tests.support import (
    HERO,
    PASSWORD,
    assert_401,
    bearer,
    create_item,
    create_user,
    login,
    make_superuser,
    stored_hash,
    table_rows,
)

# ------------------------------------------------------------------------------ login


def test_login_gives_a_bearer_token_for_users_me(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    response = client.post(
        "/login/access-token", data={"username": "DeadPool@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(user["id"])
    assert claims["exp"] - claims["iat"] == 15 * 60 == body["expires_in"]
    assert (claims["iss"], claims["aud"]) == ("heroapi", "heroapi")
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert len(body["refresh_token"]) >= 43
    me = client.get("/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == user


def test_wrong_password_and_unknown_email_look_the_same(client: TestClient) -> None:
    create_user(client, "deadpool@example.com")

    def attempt(email: str, password: str) -> tuple[Any, float]:
        started = time.perf_counter()
        response = client.post(
            "/login/access-token", data={"username": email, "password": password}
        )
        return response, time.perf_counter() - started

    # The fastest of five each, taken in turns: a loaded machine slows some attempts, not all.
    turns = [
        (
            attempt("deadpool@example.com", "wrong password"),
            attempt("nobody@example.com", "wrong password"),
        )
        for _ in range(5)
    ]
    wrong, wrong_seconds = min((turn[0] for turn in turns), key=lambda r: r[1])
    unknown, unknown_seconds = min((turn[1] for turn in turns), key=lambda r: r[1])
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json() == {"detail": "Incorrect email or password"}
    # An unknown email is checked against a real hash too: no answer arrives much sooner.
    assert unknown_seconds > wrong_seconds / 3


def test_login_form_errors_never_echo_the_password(client: TestClient) -> None:
    response = client.post("/login/access-token", data={"password": "hunter2-secret"})
    assert response.status_code == 422
    assert "hunter2" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic ZGVhZHBvb2w6cGFzcw=="},
        {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "1"}, "another-key" * 4, algorithm="HS256")
        },
    ],
)
def test_missing_or_malformed_tokens_are_401(client: TestClient, headers: dict[str, str]) -> None:
    assert_401(client.get("/users/me", headers=headers))


def test_expired_and_forged_tokens_are_401(database_url: str) -> None:
    key = "a key of this test's own, long enough" * 2
    with running_app(make_settings(database_url, secret_key=key)) as client:
        user = create_user(client, "deadpool@example.com")
        token = client.post(
            "/login/access-token", data={"username": "deadpool@example.com", "password": PASSWORD}
        ).json()["access_token"]
        claims = jwt.decode(token, key, algorithms=["HS256"], audience="heroapi")
        assert claims["sub"] == str(user["id"])
        header = {"typ": "at+jwt"}
        now = int(time.time())
        expired = jwt.encode(
            claims | {"iat": now - 7200, "exp": now - 3600}, key, "HS256", headers=header
        )
        assert_401(client.get("/users/me", headers=bearer(expired)))
        forged = jwt.encode(claims, "not our key" * 4, algorithm="HS256", headers=header)
        assert_401(client.get("/users/me", headers=bearer(forged)))
        unsigned = jwt.encode(claims, None, algorithm="none", headers=header)
        assert_401(client.get("/users/me", headers=bearer(unsigned)))
        # Signed with our key but not an access token of ours: wrong type, issuer or audience.
        for changed_header, changed_claims in [
            ({"typ": "JWT"}, {}),
            (header, {"iss": "someone else"}),
            (header, {"aud": "another-api"}),
            (header, {"stamp": "0" * 32}),
        ]:
            other = jwt.encode(claims | changed_claims, key, "HS256", headers=changed_header)
            assert_401(client.get("/users/me", headers=bearer(other)))
        assert client.get("/users/me", headers=bearer(token)).status_code == 200


def test_password_change_revokes_older_tokens(client: TestClient) -> None:
    create_user(client, "deadpool@example.com")
    old = login(client, "deadpool@example.com")
    wrong = client.post(
        "/users/me/password",
        json={"current_password": "not it at all", "new_password": "new password 123"},
        headers=old,
    )
    assert wrong.status_code == 400
    changed = client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "new password 123"},
        headers=old,
    )
    assert changed.status_code == 200
    assert "new password" not in changed.text
    assert_401(client.get("/users/me", headers=old))
    failed = client.post(
        "/login/access-token", data={"username": "deadpool@example.com", "password": PASSWORD}
    )
    assert failed.status_code == 400
    new = login(client, "deadpool@example.com", "new password 123")
    assert client.get("/users/me", headers=new).status_code == 200


def test_update_my_email(client: TestClient) -> None:
    create_user(client, "deadpool@example.com")
    create_user(client, "taken@example.com")
    headers = login(client, "deadpool@example.com")
    response = client.patch("/users/me", json={"email": "Wade@Example.com"}, headers=headers)
    assert response.status_code == 200
    assert response.json()["email"] == "Wade@example.com"
    taken = client.patch("/users/me", json={"email": "TAKEN@example.com"}, headers=headers)
    assert taken.status_code == 400
    assert taken.json() == {"detail": "Email already registered"}
    assert client.patch("/users/me", json={"email": None}, headers=headers).status_code == 422
    login(client, "wade@example.com")


def test_inactive_users_cannot_log_in_and_lose_their_tokens(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    token = login(client, "deadpool@example.com")
    admin = make_superuser(client, "admin@example.com")
    response = client.patch(f"/users/{user['id']}", json={"is_active": False}, headers=admin)
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert_401(client.get("/users/me", headers=token))
    refused = client.post(
        "/login/access-token", data={"username": "deadpool@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 400
    assert refused.json() == {"detail": "Inactive user"}


def test_only_superusers_change_other_accounts(client: TestClient) -> None:
    user = create_user(client, "deadpool@example.com")
    headers = login(client, "deadpool@example.com")
    response = client.patch(f"/users/{user['id']}", json={"is_superuser": True}, headers=headers)
    assert response.status_code == 403
    assert_401(client.patch(f"/users/{user['id']}", json={"is_superuser": True}))


@pytest.mark.parametrize(
    "old_hasher",
    [
        BcryptHasher(rounds=4),
        Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1),
        Argon2Hasher(),
    ],
    ids=["bcrypt", "weak-argon2", "argon2-64-mib"],
)
def test_hashes_of_other_parameters_are_replaced_at_login(
    client: TestClient, old_hasher: Any
) -> None:
    user = create_user(client, "deadpool@example.com")

    async def downgrade(database: Database) -> None:
        await crud.update_user(
            database=database,
            user_id=user["id"],
            changes={"hashed_password": old_hasher.hash(PASSWORD)},
        )

    app_database(client, downgrade)
    weak = stored_hash(client, "deadpool@example.com")
    assert not old_hasher.check_needs_rehash(weak)
    login(client, "deadpool@example.com")
    upgraded = stored_hash(client, "deadpool@example.com")
    assert upgraded != weak
    assert upgraded.startswith("$argon2id$")
    assert not password_hash.current_hasher.check_needs_rehash(upgraded)
    login(client, "deadpool@example.com")  # the new hash verifies


# ------------------------------------------------------------------------------ superusers


@pytest.mark.processes
def test_create_superuser_command_reads_the_password_from_stdin(
    empty_database_url: str, tmp_path: Path
) -> None:
    def create_superuser_command() -> subprocess.CompletedProcess[str]:
        arguments = ["users", "create-superuser", "--email", "root@example.com", "--password-stdin"]
        return subprocess.run(
            [sys.executable, "-m", "heroapi", *arguments],
            input=PASSWORD + "\n",
            env={**without_settings(os.environ), "DATABASE_URL": empty_database_url},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    result = create_superuser_command()
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    settings = make_settings(empty_database_url)
    with TestClient(create_app(settings)) as client:
        headers = login(client, "root@example.com")
        assert client.get("/users/", headers=headers).status_code == 200
        [row] = table_rows(client, users_table)
        assert bool(row["is_superuser"])
    again = create_superuser_command()
    assert again.returncode == 1
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr


def test_first_superuser_from_settings(database_url: str) -> None:
    settings = make_settings(
        database_url,
        auth_mode="required",
        first_superuser_email="boss@example.com",
        first_superuser_password=PASSWORD,
    )
    with running_app(make_settings(database_url)):
        pass  # empties the tables
    with TestClient(create_app(settings)) as client:
        headers = login(client, "boss@example.com")
        assert client.get("/users/", headers=headers).status_code == 200
    with TestClient(create_app(settings)) as client:  # a second start changes nothing
        assert len(table_rows(client, users_table)) == 1


def test_production_warns_about_open_mode(database_url: str, caplog: Any) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        make_settings(database_url, env="production", secret_key="short")
    with caplog.at_level(logging.WARNING, logger="heroapi"):
        create_app(make_settings(database_url, env="production"))
    assert "HEROAPI_AUTH_MODE is 'open'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="heroapi"):
        create_app(make_settings(database_url, env="production", auth_mode="required"))
    assert "HEROAPI_AUTH_MODE" not in caplog.text


# ------------------------------------------------------------------------------ auth mode required


def test_required_mode_hero_writes_need_a_token(auth_client: TestClient) -> None:
    client = auth_client
    assert_401(client.post("/heroes/", json=HERO))
    make_superuser(client, "admin@example.com")
    headers = login(client, "admin@example.com")
    created = client.post("/heroes/", json=HERO, headers=headers)
    assert created.status_code == 200
    hero_id = created.json()["id"]
    assert_401(client.patch(f"/heroes/{hero_id}", json={"age": 3}))
    assert_401(client.delete(f"/heroes/{hero_id}"))
    assert client.get(f"/heroes/{hero_id}").status_code == 200  # reads stay open
    assert client.get("/heroes/").status_code == 200
    assert client.patch(f"/heroes/{hero_id}", json={"age": 3}, headers=headers).status_code == 200
    assert client.delete(f"/heroes/{hero_id}", headers=headers).status_code == 200


def test_required_mode_users_are_created_and_listed_by_superusers(auth_client: TestClient) -> None:
    client = auth_client
    body = {"email": "deadpool@example.com", "password": PASSWORD}
    assert_401(client.post("/users/", json=body))
    assert_401(client.get("/users/"))
    admin = make_superuser(client, "admin@example.com")
    assert client.post("/users/", json=body, headers=admin).status_code == 200
    user = login(client, "deadpool@example.com")
    other = {"email": "other@example.com", "password": PASSWORD}
    assert client.post("/users/", json=other, headers=user).status_code == 403
    assert client.get("/users/", headers=user).status_code == 403
    assert len(client.get("/users/", headers=admin).json()) == 2


def test_required_mode_items_are_private(auth_client: TestClient) -> None:
    client = auth_client
    admin = make_superuser(client, "admin@example.com")
    accounts = {}
    for name in ("alice", "bob"):
        body = {"email": f"{name}@example.com", "password": PASSWORD}
        accounts[name] = client.post("/users/", json=body, headers=admin).json()
    alice, bob = login(client, "alice@example.com"), login(client, "bob@example.com")
    alice_id, bob_id = accounts["alice"]["id"], accounts["bob"]["id"]

    assert_401(client.post(f"/users/{alice_id}/items/", json={"title": "x"}))
    mine = client.post(f"/users/{alice_id}/items/", json={"title": "Alice's"}, headers=alice)
    assert mine.status_code == 200
    # Not for someone else: the other account is not even revealed.
    theirs = client.post(f"/users/{bob_id}/items/", json={"title": "sneaky"}, headers=alice)
    assert theirs.status_code == 404
    assert theirs.json() == {"detail": "User not found"}
    bobs = client.post(f"/users/{bob_id}/items/", json={"title": "Bob's"}, headers=bob).json()

    assert client.get("/items/", headers=alice).json() == [mine.json()]
    assert client.get(f"/items/{bobs['id']}", headers=alice).status_code == 404
    assert client.get(f"/items/{mine.json()['id']}", headers=alice).status_code == 200
    assert_401(client.get("/items/"))
    assert client.get(f"/users/{bob_id}", headers=alice).status_code == 404
    assert client.get(f"/users/{alice_id}", headers=alice).json()["items"] == [mine.json()]
    assert len(client.get("/items/", headers=admin).json()) == 2
    # A superuser may act for anyone.
    made = client.post(f"/users/{bob_id}/items/", json={"title": "gift"}, headers=admin)
    assert made.status_code == 200


def test_open_mode_keeps_the_tutorial_endpoints_open(client: TestClient) -> None:
    assert client.post("/heroes/", json=HERO).status_code == 200
    user = create_user(client, "deadpool@example.com")
    create_item(client, user["id"])
    assert client.get("/users/").status_code == 200
    assert client.get("/items/").status_code == 200


def test_openapi_has_the_security_scheme_and_the_tutorial_names(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/login/access-token"
    schemas = document["components"]["schemas"]
    assert set(schemas["UserCreate"]["properties"]) == {"email", "password"}
    assert set(schemas["User"]["properties"]) == {"email", "id", "is_active", "items"}
    assert set(schemas["Item"]["properties"]) == {"title", "description", "id", "owner_id"}
    assert set(schemas["ItemCreate"]["properties"]) == {"title", "description"}
    operations = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert {
        "create_user_users__post",
        "read_users_users__get",
        "read_user_users__user_id__get",
        "create_item_for_user_users__user_id__items__post",
        "read_items_items__get",
    } <= operations
    assert document["paths"]["/users/me"]["get"]["security"]


def test_the_unknown_user_hash_is_made_with_the_current_parameters() -> None:
    # Else verifying against it would take more or less time than against a real user's hash.
    current = password_hash.current_hasher
    assert current.identify(UNKNOWN_USER_HASH)
    assert not current.check_needs_rehash(UNKNOWN_USER_HASH)
