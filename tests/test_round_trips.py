"""What a hero request costs in round trips to PostgreSQL, directly and through a
transaction-pooling PgBouncer, read off the wire: a TCP proxy between the app and the server
parses what the app sends (PostgreSQL's frontend messages) and counts the times it sends after
an answer.

A one-statement write is its own transaction (no BEGIN, no COMMIT) and, once the connection has
run the statement before, takes one round trip on either path: Parse (through a pooler), Bind,
Execute and Sync sent together.
"""

import asyncio
import contextlib
import struct
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from heroapi.db import Statement, create_database
from heroapi.db.postgres import STATEMENT_CACHE_SIZE
from tests.conftest import make_settings, running_app

THROUGH_POOLER = True
on_postgresql = pytest.mark.parametrize("backend", ["postgresql", "pgbouncer"], indirect=True)

# PostgreSQL's frontend messages by their type byte, as the failure messages name them.
MESSAGES = {
    b"P": "Parse",
    b"B": "Bind",
    b"D": "Describe",
    b"E": "Execute",
    b"S": "Sync",
    b"H": "Flush",
    b"C": "Close",
    b"Q": "Query",
    b"X": "Terminate",
}
# The startup phase's requests: their first word is a length, then a code of their own.
_STARTUP_LENGTH = 8
_SSL_AND_GSS_REQUESTS = (80877103, 80877104)
NUL = b"\x00"


class _Stream:
    """What one client connection sent: its messages, grouped by round trip."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False
        self.answered = True  # the server has spoken since the client last sent

    def messages(self, data: bytes) -> list[str]:
        """The messages `data` completes; a simple Query by its SQL."""
        self.buffer += data
        found: list[str] = []
        while True:
            if not self.started:  # startup messages: no type byte
                if len(self.buffer) < _STARTUP_LENGTH:
                    return found
                (length, code) = struct.unpack("!II", self.buffer[:_STARTUP_LENGTH])
                if len(self.buffer) < length:
                    return found
                self.buffer = self.buffer[length:]
                self.started = code not in _SSL_AND_GSS_REQUESTS
                continue
            if len(self.buffer) < 5:
                return found
            kind, (length,) = self.buffer[:1], struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return found
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            name = MESSAGES.get(kind, kind.decode(errors="replace"))
            found.append(f"Query {body.rstrip(NUL).decode()!r}" if kind == b"Q" else name)


class WireCounter:
    """Forwards 127.0.0.1:port to `target`, noting each round trip's messages, in order."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.round_trips: list[list[str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(10)

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        """Stop listening, and end the connections still open (their pipes' tasks)."""
        assert self._server is not None
        self._server.close()
        pipes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)

    def taken(self) -> list[list[str]]:
        """The round trips noted since the last call."""
        with self._lock:
            taken, self.round_trips = self.round_trips, []
        return taken

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        stream = _Stream()
        await asyncio.gather(
            self._client_to_server(stream, reader, server_writer),
            self._server_to_client(stream, server_reader, writer),
        )

    async def _client_to_server(
        self, stream: _Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            current: list[str] | None = None
            while data := await reader.read(65536):
                messages = stream.messages(data)
                with self._lock:
                    if stream.answered or current is None:
                        current = []
                        self.round_trips.append(current)
                    current.extend(messages)
                    stream.answered = False
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _server_to_client(
        self, stream: _Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                with self._lock:
                    stream.answered = True
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.fixture
def wire(database_url: str) -> Iterator[tuple[WireCounter, str]]:
    """A `WireCounter` in front of this backend's server, and the database's URL through it."""
    url = make_url(database_url)
    counter = WireCounter((url.host or "127.0.0.1", url.port or 5432))
    counter.start()
    try:
        yield counter, url.set(port=counter.port).render_as_string(hide_password=False)
    finally:
        counter.stop()


@pytest.fixture
def counted(wire: tuple[WireCounter, str]) -> Iterator[tuple[TestClient, WireCounter]]:
    """The app on default settings, its database reached through a `WireCounter`."""
    counter, url = wire
    with running_app(make_settings(url)) as client:
        yield client, counter


def _round_trips(counter: WireCounter, send: Any) -> list[list[str]]:
    """The round trips of the second of two requests `send()` makes (the first one prepares
    its statement on the connection)."""
    send()
    counter.taken()
    response = send()
    assert response.status_code == 200, response.text
    return [messages for messages in counter.taken() if messages]


@on_postgresql
def test_a_hero_write_is_one_round_trip(counted: tuple[TestClient, WireCounter]) -> None:
    """POST and PATCH of a hero: one statement, its own transaction, in one round trip."""
    client, counter = counted
    hero = client.post("/heroes/", json={"name": "Deadpond", "secret_name": "Dive Wilson"})
    hero_id = hero.json()["id"]
    requests = {
        "POST": lambda: client.post("/heroes/", json={"name": "Rusty", "secret_name": "Tommy"}),
        "PATCH": lambda: client.patch(f"/heroes/{hero_id}", json={"name": "Deadpool", "age": 3}),
        "GET": lambda: client.get(f"/heroes/{hero_id}"),
    }
    for method, send in requests.items():
        round_trips = _round_trips(counter, send)
        assert len(round_trips) == 1, (method, round_trips)
        (messages,) = round_trips
        assert messages[-3:] == ["Bind", "Execute", "Sync"], (method, messages)
        assert messages[:-3] in ([], ["Parse"]), (method, messages)


async def _selects(url: str, numbers: Iterable[int], counter: WireCounter) -> list[int]:
    """How many round trips each `SELECT <number>` took, in order, on one connection."""
    database = create_database(make_settings(url))
    await database.connect()
    try:
        async with database.connection() as connection:
            taken = []
            for number in numbers:
                counter.taken()
                await connection.fetch_values(Statement(f"SELECT {number}", ()), {})
                taken.append(len([messages for messages in counter.taken() if messages]))
            return taken
    finally:
        await database.close()


@pytest.mark.parametrize("backend", ["pgbouncer"], indirect=True)
def test_behind_a_pooler_a_connection_keeps_the_latest_descriptions(
    wire: tuple[WireCounter, str],
) -> None:
    """A statement run again is one round trip while it is among the connection's latest
    `STATEMENT_CACHE_SIZE`; one pushed out is described again (two), as on its first run."""
    counter, url = wire
    kept = STATEMENT_CACHE_SIZE
    numbers = [*range(kept), 0, kept, 0, 1]
    taken = asyncio.run(_selects(url, numbers, counter))
    assert taken[:kept] == [2] * kept  # each described on its first run
    # 0 again: 1 round trip. A new one then pushes out the least recently run (1, not 0).
    assert taken[kept:] == [1, 2, 1, 2], taken[kept:]
