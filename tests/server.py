"""heroapi as a real server: `heroapi serve` in a subprocess, on a free loopback port; and the
heroes it lists (`read_all`)."""

import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Loopback addresses for clients to connect from (all of 127.0.0.0/8 is this machine).
_CLIENT_ADDRESSES = (str(host) for host in ipaddress.ip_network("127.1.0.0/16").hosts())


def client_address() -> str:
    """A loopback address that no other test of this run connects from: a client of its own to
    any server, as another machine is, so what a server counts per address starts at zero."""
    return next(_CLIENT_ADDRESSES)


def client_from(server: "LiveServer", address: str, *, connections: int) -> httpx.AsyncClient:
    """An HTTP client of `server` that connects from `address`, with up to `connections`
    requests in flight."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=60)


def without_settings(environment: Mapping[str, str]) -> dict[str, str]:
    """`environment` without heroapi's settings (`HEROAPI_*`, `DATABASE_URL`): a server a test
    starts gets the settings the test gives, never the shell's."""
    return {
        name: value
        for name, value in environment.items()
        if not name.startswith("HEROAPI_") and name != "DATABASE_URL"
    }


@dataclass
class LiveServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    database_url: str = ""  # what it serves, when a test needs to reach it directly

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_once_it_has(self, text: str, timeout: float = 5.0) -> str:
        """The log, once `text` is in it (access lines are written in batches, every 50 ms), or
        as it is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        log = self.log_text()
        while text not in log and time.monotonic() < deadline:
            time.sleep(0.05)
            log = self.log_text()
        return log


@contextmanager
def live_server(
    database_url: str,
    log_dir: Path,
    *,
    workers: int = 1,
    settings: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[LiveServer]:
    """Start `heroapi serve` as a user would, with `settings` (names without the `HEROAPI_`
    prefix) in its environment and no `HEROAPI_*` variable of the shell's; stop it on exit
    (SIGTERM: a graceful shutdown)."""
    port = port or free_port()
    log = log_dir / f"server-{port}.log"
    given = {f"HEROAPI_{name.upper()}": value for name, value in (settings or {}).items()}
    environment = without_settings(os.environ) | {"DATABASE_URL": database_url} | given
    command = [sys.executable, "-m", "heroapi", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log.open("a") as output:  # a restart on the same port adds to the same log
        process = subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=log_dir
        )
    server = LiveServer(f"http://127.0.0.1:{port}", log, process, database_url)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_until_up(
    server: LiveServer, process: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"heroapi exited with {process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"heroapi did not come up in {timeout} s:\n{server.log_text()}")


@contextmanager
def plain_uvicorn(
    directory: Path, http: str, settings: dict[str, str], *, timeout: float = 60
) -> Iterator[LiveServer]:
    """`uvicorn heroapi.main:app --http <http>` (h11 or httptools) on a SQLite file in
    `directory`, with `settings` (HEROAPI_ names) in its environment and none taken from the
    shell's; killed on exit (nothing to finish gracefully: the database is thrown away)."""
    port = free_port()
    database_url = f"sqlite:///{directory / 'heroes.db'}"
    environment = without_settings(os.environ) | {"DATABASE_URL": database_url} | settings
    command = [sys.executable, "-m", "uvicorn", "heroapi.main:app", "--http", http]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    log = directory / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=directory
        )
    server = LiveServer(f"http://127.0.0.1:{port}", log, process)
    try:
        _wait_until_up(server, process, timeout=timeout)
        yield server
    finally:
        process.kill()
        process.wait(timeout)


async def read_all(server: LiveServer) -> dict[int, dict[str, Any]]:
    """Every hero `server` lists, by id, read page by page."""
    heroes: dict[int, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        offset = 0
        while page := (await client.get(f"/heroes/?offset={offset}&limit=100")).json():
            heroes.update((hero["id"], hero) for hero in page)
            offset += len(page)
    return heroes
