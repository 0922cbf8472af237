"""Security findings, each with the test that shows it fixed: what /health/ready tells anonymous
clients, secrets echoed by a 422, request bodies over the limit under real HTTP servers, the docs
pages' headers, and the metrics token."""

import base64
import contextlib
import hashlib
import itertools
import json
import logging
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from tests.conftest import make_settings, running_app
from tests.proxy import proxy_to
from tests.server import LiveServer, plain_uvicorn
from tests.support import PASSWORD, create_user, login

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


# 1. /health/ready is open to anyone: the driver's words (host, port, database, user) are not.


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_readiness_tells_the_log_not_the_client_why_the_database_failed(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    real = make_url(database_url)
    assert real.host
    assert real.port
    assert real.database
    assert real.username
    with proxy_to(real.host, real.port) as proxy:
        through_proxy = real.set(host="127.0.0.1", port=proxy.port)
        url = through_proxy.render_as_string(hide_password=False)
        with running_app(make_settings(url, database_connect_timeout=2)) as client:
            assert client.get("/health/ready").status_code == 200
            proxy.cut("refuse")  # the server is gone: connections are refused
            answers: list[httpx.Response] = []
            with caplog.at_level(logging.WARNING, logger="heroapi"):
                # Pooled connections that were cut fail first; then a new one is refused.
                while len(answers) < 10 and "127.0.0.1" not in caplog.text:
                    answers.append(client.get("/health/ready"))
    leaks = [str(proxy.port), "127.0.0.1", real.database, real.username, "Errno", "Error"]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["retry-after"]
        assert not [leak for leak in leaks if leak in answer.text], answer.text
        assert answer.json()["reason"] == "the database cannot be queried"
    logged = [record.getMessage() for record in caplog.records if record.name == "heroapi"]
    assert any("127.0.0.1" in message for message in logged), logged  # the operator is told


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


# 3. Request bodies over HEROAPI_MAX_BODY_SIZE, under the HTTP servers uvicorn can run.

BODY_LIMIT = 64 * 1024
PADDING = 3 * 1024 * 1024  # well over the limit


@pytest.fixture(scope="module", params=["h11", "httptools"])
def uvicorn_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`uvicorn heroapi.main:app` with this HTTP implementation, its settings in its environment
    (none taken from the shell's)."""
    http: str = request.param
    with plain_uvicorn(
        tmp_path_factory.mktemp(f"uvicorn-{http}"),
        http,
        {"HEROAPI_MAX_BODY_SIZE": str(BODY_LIMIT)},
        timeout=WAIT_SECONDS,
    ) as server:
        yield server


def request_head(*headers: str) -> bytes:
    lines = ["POST /heroes/ HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    return "\r\n".join([*lines, *headers, "", ""]).encode()


def chunked_hero(name: str, padding: int) -> Iterator[bytes]:
    """A valid hero, made `padding` bytes longer with white space, in chunked encoding."""
    parts = [f'{{"name": "{name}", "secret_name": "s"'.encode()]
    parts += [b" " * 65536] * (padding // 65536) + [b"}"]
    for part in parts:
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


def raw_request(server: LiveServer, head: bytes, body: Iterable[bytes]) -> int:
    """The status a server answers to `head` and `body`, sent as they are over a socket (no HTTP
    client sends these header combinations). The body goes from a thread while the answer is
    read: a server may answer, and close, before reading it all."""
    port = int(server.url.rsplit(":", 1)[1])
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as connection:
        sender = threading.Thread(
            target=_send, args=(connection, itertools.chain([head], body)), daemon=True
        )
        sender.start()
        with contextlib.suppress(OSError):  # a timeout, or a reset once the server closed
            while b"\r\n" not in answer and (data := connection.recv(65536)):
                answer += data
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)  # wakes the sender if the server stopped reading
    sender.join(WAIT_SECONDS)
    assert answer.startswith(b"HTTP/1.1 "), (answer[:200], server.log_text()[-2000:])
    return int(answer.split(b" ", 2)[1])


def _send(connection: socket.socket, pieces: Iterable[bytes]) -> None:
    with contextlib.suppress(OSError):  # the server answered and closed before the end
        for piece in pieces:
            connection.sendall(piece)


def hero_names(server: LiveServer) -> list[str]:
    answer = httpx.get(f"{server.url}/heroes/", timeout=WAIT_SECONDS)
    assert answer.status_code == 200, answer.text
    return [hero["name"] for hero in answer.json()]


@pytest.mark.processes
def test_a_chunked_body_is_counted_whatever_its_content_length_says(
    uvicorn_server: LiveServer,
) -> None:
    head = request_head("Content-Length: 10", "Transfer-Encoding: chunked")
    status = raw_request(uvicorn_server, head, chunked_hero("Smuggled", PADDING))
    # h11 reads the chunks, as RFC 9112 says (the 413 is heroapi's); httptools refuses the two
    # headers together itself, with a 400.
    assert status in (400, 413)
    assert "Smuggled" not in hero_names(uvicorn_server)


@pytest.mark.processes
def test_a_chunked_body_over_the_limit_is_413(uvicorn_server: LiveServer) -> None:
    head = request_head("Transfer-Encoding: chunked")
    assert raw_request(uvicorn_server, head, chunked_hero("Too big", PADDING)) == 413
    assert raw_request(uvicorn_server, head, chunked_hero("Small", 0)) == 200
    names = hero_names(uvicorn_server)
    assert "Small" in names
    assert "Too big" not in names


# 4. /docs, /redoc and the OAuth2 redirect page run heroapi's own content only.


def policy_directives(header: str) -> dict[str, list[str]]:
    directives = (directive.split() for directive in header.split(";") if directive.strip())
    return {name: sources for name, *sources in directives}


def sha256_source(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_allow_only_their_own_content(sqlite_client: TestClient, path: str) -> None:
    page = sqlite_client.get(path)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    policy = policy_directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    # No other origin anywhere: only keywords, hashes, and what the page makes itself.
    sources = {source for values in policy.values() for source in values}
    assert {source for source in sources if not source.startswith("'")} <= {"data:", "blob:"}
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts
    assert "'unsafe-eval'" not in scripts
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert [sha256_source(script) for script in inline] == scripts[1:]
    # ReDoc's styled-components need it (tests/test_browser.py shows the page works); the others
    # do without.
    assert ("'unsafe-inline'" in policy["style-src"]) == (path == "/redoc")


# 5. /metrics behind HEROAPI_METRICS_TOKEN.

METRICS_TOKEN = "a-metrics-token-of-more-than-32-characters"


def test_metrics_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    with app_on_sqlite(tmp_path, metrics_token=METRICS_TOKEN) as client:
        refused_authorizations: list[bytes | None] = [
            None,
            f"Bearer {METRICS_TOKEN[:-1]}".encode(),
            f"Bearer {METRICS_TOKEN}x".encode(),
            f"Basic {METRICS_TOKEN}".encode(),
            METRICS_TOKEN.encode(),
            b"Bearer",
            b"Bearer \xe9t\xe9",  # not ASCII: still a 401, not a 500
        ]
        for authorization in refused_authorizations:
            headers = {b"Authorization": authorization} if authorization is not None else {}
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, authorization
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "heroapi_requests_total" not in refused.text
        for scheme in ("Bearer", "bearer"):
            answer = client.get("/metrics", headers={"Authorization": f"{scheme} {METRICS_TOKEN}"})
            assert answer.status_code == 200
            assert "heroapi_requests_total" in answer.text


def test_metrics_are_open_without_a_token(sqlite_client: TestClient) -> None:
    answer = sqlite_client.get("/metrics")
    assert answer.status_code == 200
    assert "heroapi_requests_total" in answer.text
