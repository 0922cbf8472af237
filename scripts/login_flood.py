"""Flood heroapi with bogus logins from one address and measure what everyone else sees.

Starts `heroapi serve` on a throwaway SQLite file (loopback only, a free port), with
HEROAPI_TRUSTED_PROXIES=127.0.0.1 so that `X-Forwarded-For` tells the flooding address from the
others. Measures, idle and then while `--clients` concurrent clients post wrong passwords from
one address for `--duration` seconds: the server's resident memory, the p50 of `GET /heroes/1`,
the time of a real login from another address, and what the flood got (its 429s by the limit
that gave them). Every loop is bounded in count and time.

    .venv/bin/python scripts/login_flood.py [--duration 10] [--clients 16]
        [--failures-per-address 30] [--json]
"""

import argparse
import asyncio
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
FLOODER = {"X-Forwarded-For": "198.51.100.66"}
OTHER = {"X-Forwarded-For": "203.0.113.5"}


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


async def p50_hero_ms(client: httpx.AsyncClient, count: int) -> float:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get("/heroes/1")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(timings)


async def login_ms(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/login/access-token",
        data={"username": "real@example.com", "password": PASSWORD},
        headers=OTHER,
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


async def flood_client(url: str, deadline: float, statuses: dict[str, int]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            response = await client.post(
                "/login/access-token",
                data={"username": f"victim{number % 50}@example.com", "password": "guess"},
                headers=FLOODER,
            )
            # A 429 by the limit that gave it ("login-address", "hashes-in-flight"), others by
            # their status.
            policy = response.headers.get("RateLimit-Policy", "")
            kind = policy.split(";")[0].strip('"') or str(response.status_code)
            statuses[kind] = statuses.get(kind, 0) + 1


def flood(url: str, deadline: float, clients: int, results: "Queue[dict[str, int]]") -> None:
    """The flooding clients, in a process of their own (so they never slow the measuring one)."""
    statuses: dict[str, int] = {}

    async def run() -> None:
        await asyncio.gather(*(flood_client(url, deadline, statuses) for _ in range(clients)))

    asyncio.run(run())
    results.put(statuses)


async def measure(url: str, pid: int, duration: float, clients: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post(
            "/users/", json={"email": "real@example.com", "password": PASSWORD}
        )
        assert created.status_code == 200, created.text
        hero = await client.post("/heroes/", json={"name": "Deadpond", "secret_name": "Dive"})
        assert hero.json()["id"] == 1, hero.text
        await p50_hero_ms(client, 200)  # warm up
        idle_hero = await p50_hero_ms(client, 300)
        idle_login = statistics.median([await login_ms(client) for _ in range(3)])
        idle_rss = memory_kib(pid, "VmRSS")

        deadline = time.monotonic() + duration
        results: Queue[dict[str, int]] = multiprocessing.Queue()
        flooder = multiprocessing.Process(target=flood, args=(url, deadline, clients, results))
        flooder.start()
        peak_rss = idle_rss
        await asyncio.sleep(min(1.0, duration / 4))  # let the flood reach its limit
        flood_heroes, flood_logins = [], []
        while time.monotonic() < deadline - 0.5:
            flood_heroes.append(await p50_hero_ms(client, 50))
            flood_logins.append(await login_ms(client))
            peak_rss = max(peak_rss, memory_kib(pid, "VmRSS"))
        statuses = results.get(timeout=duration + 60)
        flooder.join(30)
        peak_rss = max(peak_rss, memory_kib(pid, "VmRSS"))
    return {
        "duration_s": duration,
        "clients": clients,
        "flood_answers": dict(sorted(statuses.items())),
        "idle_rss_mb": round(idle_rss / 1024, 1),
        "peak_rss_during_flood_mb": round(peak_rss / 1024, 1),
        "rss_growth_mb": round((peak_rss - idle_rss) / 1024, 1),
        "hero_p50_idle_ms": round(idle_hero, 3),
        "hero_p50_flood_ms": round(statistics.median(flood_heroes), 3),
        "login_idle_ms": round(idle_login, 1),
        "login_flood_ms": round(statistics.median(flood_logins), 1),
        "login_flood_max_ms": round(max(flood_logins), 1),
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
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--failures-per-address", type=int, help="HEROAPI_LOGIN_FAILURES_PER_ADDRESS (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="heroapi-flood-") as directory:
        port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{directory}/flood.db",
            "HEROAPI_TRUSTED_PROXIES": "127.0.0.1",
            "HEROAPI_ACCESS_LOG": "false",
        }
        if arguments.failures_per_address is not None:
            environment["HEROAPI_LOGIN_FAILURES_PER_ADDRESS"] = str(arguments.failures_per_address)
        command = [sys.executable, "-m", "heroapi", "serve", "--port", str(port)]
        with open(f"{directory}/server.log", "wb") as log:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                command, env=environment, stdout=log, stderr=log, cwd=directory
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, process)
            result = asyncio.run(measure(url, process.pid, arguments.duration, arguments.clients))
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
