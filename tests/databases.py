"""The database servers the suite runs on, throwaway databases on them, and work on a plain
SQLAlchemy connection to a database (`run_sync`).

Tests never touch a developer's database: each run creates databases with unique names and drops
them. The servers default to this machine's (PostgreSQL 127.0.0.1:5432 as postgres, MariaDB
127.0.0.1:3306 as root); HEROAPI_TEST_POSTGRES_URL and HEROAPI_TEST_MYSQL_URL point elsewhere.
HEROAPI_TEST_BACKENDS (comma-separated names of `TEST_BACKENDS`) runs the suite on some backends
only, e.g. `sqlite` for the fast loop; unset, it runs on all of them.
"""

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncmy
import asyncpg
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from heroapi import migrate
from heroapi.config import DatabaseURL

T = TypeVar("T")

BACKENDS = ("sqlite", "postgresql", "mysql")
# What the `backend` fixture runs on: the servers, and PostgreSQL through a transaction-pooling
# PgBouncer (tests/pooler.py), for the modules that set THROUGH_POOLER = True.
POOLED = "pgbouncer"
TEST_BACKENDS = (*BACKENDS, POOLED)


def selected_backends(names: str) -> tuple[str, ...]:
    """The backends a comma-separated `names` (HEROAPI_TEST_BACKENDS) selects, all if it is
    empty; a name not in `TEST_BACKENDS` is a ValueError."""
    chosen = {name.strip() for name in names.split(",") if name.strip()}
    unknown = chosen.difference(TEST_BACKENDS)
    if unknown:
        raise ValueError(
            f"HEROAPI_TEST_BACKENDS: unknown {', '.join(sorted(unknown))}; "
            f"the backends are {', '.join(TEST_BACKENDS)}"
        )
    return tuple(backend for backend in TEST_BACKENDS if not chosen or backend in chosen)


SERVER_URLS = {
    "postgresql": os.environ.get(
        "HEROAPI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    "mysql": os.environ.get("HEROAPI_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}

# How CI (CI=true) starts a server that is down: the machine's own service commands.
START_COMMANDS = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mysql": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}


@dataclass(frozen=True)
class ServerStatus:
    backend: str
    reachable: bool
    reason: str = ""


def _tcp_reachable(url: str, default_port: int) -> str:
    parsed = make_url(url)
    host, port = parsed.host or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return ""
    except OSError as error:
        return f"{host}:{port}: {error}"


def probe(backend: str) -> ServerStatus:
    if backend == "sqlite":
        return ServerStatus(backend, True)
    problem = _tcp_reachable(SERVER_URLS[backend], 5432 if backend == "postgresql" else 3306)
    return ServerStatus(backend, not problem, problem)


def ensure_server(backend: str, *, start: bool, wait: float = 60.0) -> ServerStatus:
    """Whether `backend`'s server answers; with `start`, start it first if it is down."""
    status = probe(backend)
    if status.reachable or not start:
        return status
    subprocess.run(START_COMMANDS[backend], shell=True, check=False, capture_output=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = probe(backend)
        if status.reachable:
            return status
        time.sleep(1)
    return status


def server_statuses(selected: tuple[str, ...], *, start: bool) -> dict[str, ServerStatus]:
    """Whether each selected backend can run here (its server up, PgBouncer also installed);
    with `start`, a server that is down is started first."""
    from tests import pooler

    needed = {*selected, "postgresql"} if POOLED in selected else set(selected)
    servers = {
        backend: ensure_server(backend, start=start) for backend in BACKENDS if backend in needed
    }
    if POOLED in selected:
        pgbouncer_missing = pooler.missing()
        postgresql = servers["postgresql"]
        servers[POOLED] = (
            ServerStatus(POOLED, False, pgbouncer_missing)
            if pgbouncer_missing
            else ServerStatus(POOLED, postgresql.reachable, postgresql.reason)
        )
    return {backend: servers[backend] for backend in selected}


async def _create_postgres(name: str) -> None:
    connection = await asyncpg.connect(SERVER_URLS["postgresql"])
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_postgres(name: str) -> None:
    connection = await asyncpg.connect(SERVER_URLS["postgresql"])
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _mysql(statement: str) -> None:
    url = make_url(SERVER_URLS["mysql"])
    connection = await asyncmy.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or ""
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(statement)
    finally:
        connection.close()


@contextmanager
def throwaway_database(backend: str, directory: Path) -> Iterator[str]:
    """An empty database of its own on `backend`, dropped afterwards; yields its plain URL."""
    name = f"heroapi_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if backend == POOLED:
        from tests import pooler

        with throwaway_database("postgresql", directory) as direct:
            yield pooler.shared("transaction").through(direct)
        return
    if backend == "sqlite":
        yield f"sqlite:///{directory / (name + '.db')}"
        return
    server = make_url(SERVER_URLS[backend])
    url = server.set(database=name).render_as_string(hide_password=False)
    if backend == "postgresql":
        asyncio.run(_create_postgres(name))
        try:
            yield url
        finally:
            asyncio.run(drop_postgres(name))
    else:
        asyncio.run(_mysql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        try:
            yield url
        finally:
            asyncio.run(_mysql(f"DROP DATABASE IF EXISTS `{name}`"))


def run_sync(database: DatabaseURL, work: Callable[[Connection], T]) -> T:
    """`work(connection)` on a plain SQLAlchemy connection to `database`, committed."""
    url = migrate.sqlalchemy_url(database)
    if database.backend == "sqlite":
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.begin() as connection:
            return work(connection)

    async def run() -> T:
        async_engine = create_async_engine(
            url, poolclass=pool.NullPool, connect_args=migrate.connect_arguments(database)
        )
        try:
            async with async_engine.begin() as connection:
                return await connection.run_sync(work)
        finally:
            await async_engine.dispose()

    return asyncio.run(run())
