"""Security findings, each with the test that shows it fixed: what /health/ready tells anonymous
clients, secrets echoed by a 422, request bodies over the limit under real HTTP servers, the docs
pages' headers, and the metrics token."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings, running_app
from tests.test_users import PASSWORD, create_user, login

WAIT_SECONDS = 30


@contextmanager
def app_on_sqlite(directory: Path, **overrides: Any) -> Iterator[TestClient]:
    """The app on a SQLite file of the test's own (for what does not depend on the backend)."""
    url = f"sqlite:///{directory / 'hardening.db'}"
    with running_app(make_settings(url, migrate_on_start=True, **overrides)) as client:
        yield client


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    with app_on_sqlite(tmp_path) as client:
        yield client


# 2. A 422 never echoes a password or a secret_name, whatever the shape of the body.

SECRET = "hunter2hunter2"  # sent as a password and as a secret_name; never in an answer


def secret_bodies(others: dict[str, Any], key: str) -> list[tuple[bytes, str]]:
    """(raw body, content type) for bodies that carry SECRET as `key`, or as the whole body, in
    every shape a client may send. None of them is valid, so each is a 4xx."""
    holder = others | {key: SECRET}
    shapes: list[Any] = [
        [holder],
        [[holder]],
        [SECRET],
        [[SECRET]],
        SECRET,
        json.dumps(holder),  # a JSON string that holds JSON
        {"wrapped": holder},
        [{"wrapped": [holder]}],
        {key: SECRET},  # the other fields missing
        holder | {key: [SECRET]},
        holder | {key: {"nested": SECRET}},
        holder | {key: SECRET * 20},  # too long
    ]
    raw = [(json.dumps(shape).encode(), "application/json") for shape in shapes]
    return [
        *raw,
        (json.dumps([holder]).encode(), ""),  # no content type: FastAPI reads it as JSON
        (json.dumps(holder).encode(), "text/plain"),
        (json.dumps(holder).encode(), "application/xml"),
        (urlencode(holder).encode(), "application/x-www-form-urlencoded"),
        (json.dumps([holder]).encode()[:-5], "application/json"),  # cut short: not JSON
    ]


def test_no_secret_is_echoed_whatever_the_body_shape(sqlite_client: TestClient) -> None:
    client = sqlite_client
    create_user(client, "owner@example.com")
    token = login(client, "owner@example.com")
    targets: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/heroes/", {"name": "New", "age": 3}, "secret_name"),
        ("POST", "/users/", {"email": "new@example.com"}, "password"),
        ("POST", "/users/me/password", {"current_password": PASSWORD}, "new_password"),
        ("POST", "/users/me/password", {"new_password": "a new password"}, "current_password"),
        ("POST", "/login/access-token", {"username": "owner@example.com"}, "password"),
    ]
    for method, path, others, key in targets:
        for content, content_type in secret_bodies(others, key):
            headers = token | ({"content-type": content_type} if content_type else {})
            answer = client.request(method, path, content=content, headers=headers)
            case = (method, path, content[:80], content_type, answer.status_code)
            assert answer.status_code in (400, 422), case
            assert SECRET not in answer.text, (case, answer.text)
