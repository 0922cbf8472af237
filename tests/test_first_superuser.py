"""HEROAPI_FIRST_SUPERUSER_EMAIL, as an operator meets it in `heroapi serve`'s output."""

import json
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import make_settings, running_app
from tests.server import live_server
from tests.support import PASSWORD, create_user

pytestmark = pytest.mark.processes  # every test here starts heroapi

SETTING = "HEROAPI_FIRST_SUPERUSER_EMAIL"


def warnings_naming_the_setting(log: str) -> list[str]:
    return [line for line in log.splitlines() if SETTING in line]


def test_an_existing_normal_account_is_named_at_start_not_promoted(
    database_url: str, tmp_path: Path
) -> None:
    with running_app(make_settings(database_url)) as client:
        create_user(client, "boss@example.com")
    settings = {"first_superuser_email": "Boss@example.com", "first_superuser_password": PASSWORD}
    with live_server(database_url, tmp_path, settings=settings) as server:
        [line] = warnings_naming_the_setting(server.log_text())
        record = json.loads(line)
        assert record["level"] == "warning"
        assert "not a superuser" in record["message"]
        assert "not promoted" in record["message"]
        assert "boss@example.com" not in line.lower()  # the setting is named, not its value
        with httpx.Client(base_url=server.url, timeout=30) as http:
            form = {"username": "boss@example.com", "password": PASSWORD}
            token = http.post("/login/access-token", data=form).json()["access_token"]
            me = http.get("/users/me", headers={"Authorization": f"Bearer {token}"}).json()
            promote = http.patch(
                f"/users/{me['id']}",
                json={"is_superuser": True},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert promote.status_code == 403  # not a superuser


def test_an_existing_superuser_or_a_new_one_starts_quietly(
    database_url: str, tmp_path: Path
) -> None:
    with running_app(make_settings(database_url)):
        pass  # empties the tables
    settings = {"first_superuser_email": "boss@example.com", "first_superuser_password": PASSWORD}
    with live_server(database_url, tmp_path, settings=settings) as server:
        assert warnings_naming_the_setting(server.log_text()) == []
    with live_server(database_url, tmp_path, settings=settings) as server:  # now it exists
        assert warnings_naming_the_setting(server.log_text()) == []
