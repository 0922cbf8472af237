"""Server CPU of a list page by its depth: cursor pages against offset pages.

Fills a throwaway database with N heroes (default 100,000; ages 0-99, one in ten without),
starts `heroapi serve` on it (one process, a free loopback port), and for three orders (the
tutorial's id order, `order=name` and `order=-age,name`) finds a cursor deep in the list by
following `next` links from the first page. Then it sends each page of the table below R times
(default 200) and divides the CPU time the server used by R: heroapi's process, and on
PostgreSQL the database's backends too (from /proc, utime + stime). Prints one table;
`--json` prints JSON.

    PYTHONPATH=src .venv/bin/python scripts/list_depth.py --backend sqlite
    PYTHONPATH=src .venv/bin/python scripts/list_depth.py --backend postgresql

A deep offset page read again is cheap in every order: heroapi remembers where deep pages start
while nothing is written (crud/listing/anchors.py), and this table reads each page again.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def heroes(count: int) -> list[tuple[str, int | None, str]]:
    chance = random.Random(17)  # noqa: S311 (the same table every run, not a secret)
    return [
        (
            f"Hero {chance.randrange(10**6):06d}",
            None if chance.random() < 0.1 else chance.randrange(100),
            "secret",
        )
        for _ in range(count)
    ]


def migrate(url: str) -> None:
    environment = {**os.environ, "HEROAPI_DATABASE_URL": url}
    command = [sys.executable, "-m", "heroapi", "db", "upgrade"]
    subprocess.run(command, env=environment, check=True, capture_output=True)  # noqa: S603


@contextlib.contextmanager
def sqlite_database(rows: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/depth.db"
        migrate(url)
        with contextlib.closing(sqlite3.connect(f"{folder}/depth.db")) as connection:
            statement = "INSERT INTO hero (name, age, secret_name) VALUES (?, ?, ?)"
            connection.executemany(statement, heroes(rows))
            connection.execute("ANALYZE")
            connection.commit()
        yield url


@contextlib.contextmanager
def postgres_database(rows: int) -> Iterator[str]:
    name = f"heroapi_depth_{os.getpid()}"

    async def run(*statements: str, database: str = "postgres") -> None:
        connection = await asyncpg.connect(f"{POSTGRES}/{database}")
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    async def fill() -> None:
        connection = await asyncpg.connect(f"{POSTGRES}/{name}")
        try:
            await connection.copy_records_to_table(
                "hero", records=heroes(rows), columns=["name", "age", "secret_name"]
            )
            await connection.execute("ANALYZE hero")
        finally:
            await connection.close()

    asyncio.run(run(f"CREATE DATABASE {name}"))
    try:
        url = f"{POSTGRES}/{name}"
        migrate(url)
        asyncio.run(fill())
        yield url
    finally:
        asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def get(base: str, path: str) -> tuple[bytes, str | None]:
    """`path` on the server at `base`; a `Link` header's target is already an absolute URL."""
    url = path if path.startswith("http") else base + path
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
        return response.read(), response.headers.get("link")


def link(header: str | None, relation: str) -> str | None:
    for part in (header or "").split(", <"):
        target, _, rest = part.lstrip("<").partition(">")
        if f'rel="{relation}"' in rest:
            return target
    return None


def deep_cursor_page(base: str, first: str, depth_pages: int) -> str:
    """The page `depth_pages` pages in, by following `next` links."""
    path = first
    for _ in range(depth_pages):
        _, header = get(base, path)
        following = link(header, "next")
        assert following is not None, "the list ended early"
        path = following
    return path


def backend_pids(url: str) -> list[int]:
    if not url.startswith("postgresql"):
        return []

    async def pids() -> list[int]:
        connection = await asyncpg.connect(f"{POSTGRES}/postgres")
        try:
            name = url.rsplit("/", 1)[1]
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", name
            )
            return [row["pid"] for row in rows]
        finally:
            await connection.close()

    return asyncio.run(pids())


def measure(base: str, pids: list[int], path: str, repeat: int) -> tuple[float, float]:
    """CPU (ms) the server spent per request, and the median wall time (ms)."""
    get(base, path)  # warm: compiled statements, caches
    walls = []
    before = cpu_seconds(pids)
    for _ in range(repeat):
        start = time.perf_counter()
        get(base, path)
        walls.append(time.perf_counter() - start)
    cpu = (cpu_seconds(pids) - before) / repeat
    return cpu * 1000, sorted(walls)[len(walls) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    limit = 100
    depth = arguments.rows - 2 * limit  # rows before the deep pages
    database = sqlite_database if arguments.backend == "sqlite" else postgres_database
    results = []
    with database(arguments.rows) as url, tempfile.TemporaryDirectory() as folder:
        port = free_port()
        environment = {
            **os.environ,
            "HEROAPI_DATABASE_URL": url,
            "HEROAPI_LOG_LEVEL": "WARNING",
            # The deep offset pages of the other orders are refused by default, and the first
            # read of one is past SQLite's statement budget: measured anyway.
            "HEROAPI_MAX_SORTED_OFFSET": "none",
            "HEROAPI_SQLITE_STATEMENT_BUDGET": "600",
        }
        command = [sys.executable, "-m", "heroapi", "serve", "--port", str(port)]
        server = subprocess.Popen(  # noqa: S603 (our own command)
            command, env=environment, cwd=folder, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                with contextlib.suppress(OSError):
                    get(base, "/health/ready")
                    break
                time.sleep(0.05)
            for order in ("", "order=name&", "order=-age,name&"):
                first = f"/heroes/?{order}limit={limit}"
                deep = deep_cursor_page(base, first, depth // limit)
                offset = f"/heroes/?{order}offset={depth}&limit={limit}"
                pages = {
                    "first page": first,
                    f"cursor page at row {depth:,}": deep,
                    f"offset page at row {depth:,}": offset,
                }
                pids = [server.pid, *backend_pids(url)]
                for name, path in pages.items():
                    cpu, wall = measure(base, pids, path, arguments.repeat)
                    results.append(
                        {"order": order[6:-1] or "id", "page": name, "cpu_ms": cpu, "wall_ms": wall}
                    )
        finally:
            server.terminate()
            server.wait(20)
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{arguments.backend}, {arguments.rows:,} heroes, {limit} a page, {arguments.repeat} each"
    )
    print(f"{'order':<10} {'page':<26} {'server CPU ms':>14} {'wall ms (median)':>17}")
    for row in results:
        print(
            f"{row['order']:<10} {row['page']:<26} {row['cpu_ms']:>14.2f} {row['wall_ms']:>17.2f}"
        )


if __name__ == "__main__":
    main()
