"""A body over HEROAPI_MAX_BODY_SIZE is answered 413 in a way every client can read, under both
of uvicorn's HTTP implementations: the refused body is read and dropped before the connection
closes (a server that closes while the client is still writing makes the client's kernel see a
reset, not the answer), within bounds an attacker cannot stretch."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx2 as httpx
import pytest

from tests.server import LiveServer, plain_uvicorn

pytestmark = pytest.mark.processes  # every test here starts uvicorn

WAIT_SECONDS = 30
BODY_LIMIT = 64 * 1024
DISCARD_LIMIT = 12 * 1024 * 1024
DISCARD_SECONDS = 1.0


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`uvicorn heroapi.main:app --http <implementation>`, its settings in its environment (none
    taken from the shell's)."""
    http: str = request.param
    with plain_uvicorn(
        tmp_path_factory.mktemp(f"body-limit-{http}"),
        http,
        {
            "HEROAPI_MAX_BODY_SIZE": str(BODY_LIMIT),
            "HEROAPI_BODY_DISCARD_SIZE": str(DISCARD_LIMIT),
            "HEROAPI_BODY_DISCARD_SECONDS": str(DISCARD_SECONDS),
            "HEROAPI_ACCESS_LOG": "false",
        },
        timeout=WAIT_SECONDS,
    ) as server:
        yield server


def hero_body(size: int) -> bytes:
    """A valid hero, padded with white space to `size` bytes."""
    hero = b'{"name": "Too big", "secret_name": "s"}'
    return hero[:-1] + b" " * (size - len(hero)) + b"}"


async def in_chunks(body: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """`body` as a stream of unknown length: httpx sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("size", [1_000_000, 10_000_000])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("connection", ["close", "keep-alive"])
def test_every_client_reads_the_413(
    server: LiveServer, size: int, chunked: bool, connection: str
) -> None:
    body = hero_body(size)
    headers = {"content-type": "application/json", "connection": connection}

    async def post() -> httpx.Response:
        # A fresh client per request: each one on a new connection, as in the issue.
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_SECONDS) as client:
            content = in_chunks(body) if chunked else body
            return await client.post("/heroes/", content=content, headers=headers)

    for attempt in range(3):
        answer = asyncio.run(post())
        assert answer.status_code == 413, (attempt, answer.text)
        assert answer.json() == {"detail": f"Request body over {BODY_LIMIT} bytes"}
        # The connection is not reused after a refused body.
        assert answer.headers["connection"] == "close"
    heroes = httpx.get(f"{server.url}/heroes/", timeout=WAIT_SECONDS).json()
    assert "Too big" not in [hero["name"] for hero in heroes]


def read_until_closed(connection: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or resets) the connection, and when."""
    connection.settimeout(timeout)
    started = time.monotonic()
    answer = b""
    try:
        while data := connection.recv(65536):
            answer += data
    except ConnectionResetError:
        pass
    return answer, time.monotonic() - started


def test_a_stalled_body_is_dropped_after_the_time_bound(server: LiveServer) -> None:
    """A client that declares a large body and then sends nothing holds the connection for
    HEROAPI_BODY_DISCARD_SECONDS, not for as long as it likes."""
    port = int(server.url.rsplit(":", 1)[1])
    head = (
        "POST /heroes/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY_LIMIT * 4}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head.encode() + b"{")
        answer, elapsed = read_until_closed(connection, WAIT_SECONDS)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert DISCARD_SECONDS * 0.8 < elapsed < DISCARD_SECONDS + 5, elapsed


def test_a_body_past_the_discard_bound_is_not_read(server: LiveServer) -> None:
    """A declared length over HEROAPI_BODY_DISCARD_SIZE is answered at once and the connection
    closed: heroapi does not read gigabytes to be polite."""
    port = int(server.url.rsplit(":", 1)[1])
    head = (
        "POST /heroes/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {DISCARD_LIMIT + 1}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head.encode())
        answer, elapsed = read_until_closed(connection, WAIT_SECONDS)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert elapsed < DISCARD_SECONDS * 0.8, elapsed


def test_a_chunked_body_past_the_discard_bound_is_cut_off(server: LiveServer) -> None:
    """A chunked body is read and dropped up to HEROAPI_BODY_DISCARD_SIZE, then the connection
    closes under the sender, however fast it sends."""
    port = int(server.url.rsplit(":", 1)[1])
    head = (
        "POST /heroes/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    sent = 0
    cut_off = False
    deadline = time.monotonic() + WAIT_SECONDS
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head.encode() + b"1\r\n{\r\n")
        while not cut_off and time.monotonic() < deadline:
            try:
                connection.sendall(chunk)
                sent += len(chunk)
            except (ConnectionResetError, BrokenPipeError):
                cut_off = True
    assert cut_off
    # Socket buffers on both sides hold a few megabytes that were sent but never read.
    assert DISCARD_LIMIT <= sent < DISCARD_LIMIT + 8 * 1024 * 1024, sent


def test_a_whole_body_over_the_limit_is_answered_at_once(server: LiveServer) -> None:
    """A chunked body that arrives whole before the limit is noticed has nothing left to read:
    its 413 does not wait out HEROAPI_BODY_DISCARD_SECONDS for more."""
    port = int(server.url.rsplit(":", 1)[1])
    head = (
        "POST /heroes/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    body = hero_body(BODY_LIMIT + 1024)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head.encode() + chunked)
        answer, elapsed = read_until_closed(connection, WAIT_SECONDS)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert elapsed < DISCARD_SECONDS * 0.8, elapsed


def test_expect_100_continue_gets_the_413_without_sending_the_body(server: LiveServer) -> None:
    """A client that waits for 100 Continue is told 413 instead and need not send the body; the
    server does not wait for it."""
    port = int(server.url.rsplit(":", 1)[1])
    head = (
        "POST /heroes/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY_LIMIT * 4}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head.encode())
        answer, elapsed = read_until_closed(connection, WAIT_SECONDS)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert elapsed < DISCARD_SECONDS * 0.8, elapsed
