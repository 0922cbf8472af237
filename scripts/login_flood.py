"""Flood heroapi with bogus logins from many addresses and measure what a real user sees.

Starts `heroapi serve` on a throwaway SQLite file (loopback only, a free port) with default
settings: its environment carries no `HEROAPI_*` variable but those given here. Linux routes all
of 127.0.0.0/8 to loopback, so each flooding address is a source address of its own (127.0.0.2,
127.0.0.3, ...), `--connections` connections each, posting wrong passwords for accounts that do
not exist, each attempt a new email, for `--duration` seconds (and at most `MAX_ATTEMPTS` per
connection). Meanwhile a real user logs in from 127.0.0.1 `--logins` times, evenly spread:
every answer and its time are reported, with the server's resident memory, the p50 of
`GET /heroes/1`, and what the flood got (by status; a 429 by the limit that gave it;
"unanswered": requests still waiting at the end, which the flood drops). Before
the flood the real user logs in once, as a user who logged in yesterday would have; a second
user logs in for the first time during the flood (`first_login`).

    .venv/bin/python scripts/login_flood.py [--duration 12] [--addresses 16] [--connections 4]
        [--logins 10] [--failures-per-address N] [--json]
"""

import argparse
import asyncio
import ipaddress
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Queue
from pathlib import Path
from typing import Any

import httpx2 as httpx

PASSWORD = "a real password of a real user"  # noqa: S105 (a throwaway test account)
REAL_ADDRESS = "127.0.0.1"
FIRST_FLOODER = ipaddress.IPv4Address("127.0.0.2")
MAX_ATTEMPTS = 5_000  # per flooding connection, whatever the duration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def client_from(url: str, address: str, connections: int) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=60)


async def p50_hero_ms(client: httpx.AsyncClient, count: int) -> float:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get("/heroes/1")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(timings)


async def login(client: httpx.AsyncClient, email: str) -> tuple[int, float]:
    """A login's status and time (ms)."""
    started = time.perf_counter()
    response = await client.post(
        "/login/access-token", data={"username": email, "password": PASSWORD}
    )
    return response.status_code, round((time.perf_counter() - started) * 1000, 1)


async def flood_connection(
    client: httpx.AsyncClient, name: str, deadline: float, statuses: dict[str, int]
) -> None:
    for number in range(MAX_ATTEMPTS):
        if time.monotonic() >= deadline:
            return
        response = await client.post(
            "/login/access-token",
            data={"username": f"nobody-{name}-{number}@example.com", "password": "a guess"},
        )
        # A 429 by the limit that gave it ("login-address"), others by their status.
        policy = response.headers.get("RateLimit-Policy", "")
        kind = policy.split(";")[0].strip('"') or str(response.status_code)
        statuses[kind] = statuses.get(kind, 0) + 1


def flood(
    url: str, deadline: float, addresses: int, connections: int, results: "Queue[dict[str, int]]"
) -> None:
    """The flooding clients, in a process of their own (so they never slow the measuring one)."""
    statuses: dict[str, int] = {}

    async def run() -> None:
        clients = [
            client_from(url, str(FIRST_FLOODER + number), connections)
            for number in range(addresses)
        ]
        tasks = [
            asyncio.create_task(
                flood_connection(client, f"{number}.{connection}", deadline, statuses)
            )
            for number, client in enumerate(clients)
            for connection in range(connections)
        ]
        try:
            # At the deadline, requests still waiting for an answer are dropped (the flood ends).
            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            for task in tasks:
                if task.cancel():
                    statuses["unanswered"] = statuses.get("unanswered", 0) + 1
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for client in clients:
                await client.aclose()

    asyncio.run(run())
    results.put(statuses)


async def measure(url: str, pid: int, arguments: argparse.Namespace) -> dict[str, Any]:
    duration = arguments.duration
    async with client_from(url, REAL_ADDRESS, 4) as client:
        for email in ("real@example.com", "first@example.com"):
            created = await client.post("/users/", json={"email": email, "password": PASSWORD})
            assert created.status_code == 200, created.text
        hero = await client.post("/heroes/", json={"name": "Deadpond", "secret_name": "Dive"})
        assert hero.json()["id"] == 1, hero.text
        await p50_hero_ms(client, 200)  # warm up
        idle_hero = await p50_hero_ms(client, 300)
        idle_logins = [await login(client, "real@example.com") for _ in range(3)]
        assert all(status == 200 for status, _ in idle_logins), idle_logins
        idle_rss = memory_kib(pid, "VmRSS")

        deadline = time.monotonic() + duration
        results: Queue[dict[str, int]] = multiprocessing.Queue()
        flooder = multiprocessing.Process(
            target=flood,
            args=(url, deadline, arguments.addresses, arguments.connections, results),
        )
        flooder.start()
        peak_rss = idle_rss
        await asyncio.sleep(min(1.0, duration / 6))  # let the flood fill the queue
        first_login = await login(client, "first@example.com")
        start, flood_heroes, logins = time.monotonic(), [], []
        step = (deadline - 0.5 - start) / arguments.logins
        for number in range(arguments.logins):
            await asyncio.sleep(max(0.0, start + number * step - time.monotonic()))
            logins.append(await login(client, "real@example.com"))
            flood_heroes.append(await p50_hero_ms(client, 20))
            peak_rss = max(peak_rss, memory_kib(pid, "VmRSS"))
        statuses = results.get(timeout=duration + 60)
        flooder.join(30)
        peak_rss = max(peak_rss, memory_kib(pid, "VmRSS"))
    succeeded = [ms for status, ms in logins if status == 200]
    return {
        "duration_s": duration,
        "flooding_addresses": arguments.addresses,
        "connections_per_address": arguments.connections,
        "flood_answers": dict(sorted(statuses.items())),
        "idle_rss_mb": round(idle_rss / 1024, 1),
        "peak_rss_during_flood_mb": round(peak_rss / 1024, 1),
        "rss_growth_mb": round((peak_rss - idle_rss) / 1024, 1),
        "hero_p50_idle_ms": round(idle_hero, 3),
        "hero_p50_flood_ms": round(statistics.median(flood_heroes), 3),
        "login_idle_ms": statistics.median(ms for _, ms in idle_logins),
        "first_login": first_login,
        "logins": logins,
        "logins_succeeded": len(succeeded),
        "login_flood_p50_ms": round(statistics.median(succeeded), 1) if succeeded else None,
        "login_flood_max_ms": max(succeeded) if succeeded else None,
    }


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"heroapi exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("heroapi did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--addresses", type=int, default=16, choices=range(1, 250))
    parser.add_argument("--connections", type=int, default=4, help="per flooding address")
    parser.add_argument("--logins", type=int, default=10, help="the real user's, during it")
    parser.add_argument(
        "--failures-per-address", type=int, help="HEROAPI_LOGIN_FAILURES_PER_ADDRESS (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="heroapi-flood-") as directory:
        port = free_port()
        environment = {
            **{name: value for name, value in os.environ.items() if not name.startswith("HEROAPI")},
            "DATABASE_URL": f"sqlite:///{directory}/flood.db",
        }
        if arguments.failures_per_address is not None:
            environment["HEROAPI_LOGIN_FAILURES_PER_ADDRESS"] = str(arguments.failures_per_address)
        command = [sys.executable, "-m", "heroapi", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        with open(f"{directory}/server.log", "wb") as log:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                command, env=environment, stdout=log, stderr=log, cwd=directory
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process)
            result = asyncio.run(measure(url, process.pid, arguments))
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    if arguments.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
