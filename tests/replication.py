"""A PostgreSQL primary and a streaming replica of the suite's own, for the read-replica tests.

Made from the machine's PostgreSQL 15 binaries in temporary directories and started on free
loopback ports as the `postgres` OS user (the suite runs as root, and PostgreSQL refuses to run
as root). Their `pg_hba.conf` is ours: trust from 127.0.0.1, replication included. The shared
server on 5432 is never touched. Everything is stopped (`pg_ctl stop -m immediate`, by data
directory: only these two servers) and removed afterwards.

Without the binaries the tests are skipped, saying why; under CI=true they fail instead.
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from heroapi import migrate
from heroapi.config import parse_database_url
from tests.conftest import selected
from tests.server import free_port

BINARIES = Path("/usr/lib/postgresql/15/bin")
DATABASE = "heroapi"
_HBA = """\
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{directory}'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
synchronous_commit = on
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
log_min_messages = warning
"""


def _as_postgres(*command: str | Path, timeout: float = 60) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, command)],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


@dataclass
class Server:
    """One of the two servers: its data directory and port, and how to stop and start it."""

    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        log = self.directory.parent / f"{self.directory.name}.log"
        _as_postgres(BINARIES / "pg_ctl", "start", "-w", "-D", self.directory, "-l", log)

    def stop(self) -> None:
        """Stop it at once, as a crash would (no shutdown checkpoint)."""
        _as_postgres(BINARIES / "pg_ctl", "stop", "-w", "-m", "immediate", "-D", self.directory)

    def running(self) -> bool:
        command = ["runuser", "-u", "postgres", "--", str(BINARIES / "pg_ctl"), "status", "-D"]
        status = subprocess.run([*command, str(self.directory)], capture_output=True, check=False)
        return status.returncode == 0

    async def query(self, sql: str, *args: Any) -> Any:
        """The first value of `sql`'s first row, on this server's test database."""
        connection = await asyncpg.connect(self.url)
        try:
            return await connection.fetchval(sql, *args)
        finally:
            await connection.close()


@dataclass
class Replication:
    primary: Server
    replica: Server

    async def wait_for_replay(self) -> None:
        """Until the replica has replayed everything the primary has written so far (10 s)."""
        target = await self.primary.query("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            replayed = await self.replica.query(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target
            )
            if replayed:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the replica did not replay up to {target} in 10 s")


def _binaries_missing() -> str:
    missing = [
        name
        for name in ("initdb", "pg_ctl", "pg_basebackup", "postgres")
        if not (BINARIES / name).exists()
    ]
    if missing:
        return f"PostgreSQL 15 binaries not found in {BINARIES}: {', '.join(missing)}"
    if (
        shutil.which("runuser") is None
        or subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode
    ):
        return "no `runuser` or no `postgres` OS user to run PostgreSQL as"
    return ""


@pytest.fixture(scope="session")
def replication(request: pytest.FixtureRequest) -> Iterator[Replication]:
    """A migrated primary and its streaming replica, for the whole session (a PostgreSQL test:
    skipped unless the run is on PostgreSQL)."""
    if not selected(request.config, "postgresql"):
        pytest.skip("postgresql not selected by HEROAPI_TEST_BACKENDS")
    problem = _binaries_missing()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs PostgreSQL replication: {problem}")
        pytest.skip(problem)
    root = Path(tempfile.mkdtemp(prefix="heroapi-replication-"))
    shutil.chown(root, "postgres", "postgres")
    primary = Server(root / "primary", free_port())
    replica = Server(root / "replica", free_port())
    started: list[Server] = []
    try:
        _as_postgres(
            BINARIES / "initdb", "-D", primary.directory, "-U", "postgres", "-A", "trust", "-N"
        )
        (primary.directory / "pg_hba.conf").write_text(_HBA)
        with (primary.directory / "postgresql.conf").open("a") as config:
            config.write(_SETTINGS.format(port=primary.port, directory=root))
        primary.start()
        started.append(primary)
        asyncio.run(_create_database(primary))
        migrate.upgrade(parse_database_url(primary.url))
        # -R: a standby.signal and primary_conninfo; -X stream: the WAL the copy needs, too.
        _as_postgres(
            BINARIES / "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", replica.directory, "-R", "-X", "stream", "-c", "fast"),
        )
        with (replica.directory / "postgresql.conf").open("a") as config:
            config.write(f"port = {replica.port}\n")
        replica.start()
        started.append(replica)
        yield Replication(primary, replica)
    finally:
        for server in reversed(started):
            if server.running():
                server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _create_database(server: Server) -> None:
    connection = await asyncpg.connect(server.url.rsplit("/", 1)[0] + "/postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()
