"""The throttle as a user meets it: `heroapi serve`, on SQLite, driven over HTTP. (The volume
on default settings, 1,000 registrations and bursts of 16 from one address, is driven by
tests/test_contract_on_defaults.py; a flood from many addresses by tests/test_flood.py.)"""

from pathlib import Path

import httpx2 as httpx
import pytest

from tests.server import live_server

pytestmark = pytest.mark.processes


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
