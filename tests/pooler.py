"""PgBouncer of the suite's own, in front of the test PostgreSQL, on a free loopback port.

Debian's `pgbouncer` (CI installs it, as it installs the browser); when it is missing, the tests
that need it are skipped with a clear reason, except under CI=true, where they fail. It refuses
to run as root, so under root it runs as the `postgres` user, in a directory that user owns.
Each instance is a child process of the suite, stopped by its PID.
"""

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url

from tests.databases import SERVER_URLS

PoolMode = Literal["transaction", "session"]
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Server connections per database and user: fewer than heroapi's pool, so that client
# connections share them, as they do behind a real pooler.
SERVER_POOL_SIZE = 4


def missing() -> str | None:
    """Why PgBouncer cannot run here, or None."""
    if not Path(PGBOUNCER).exists():
        return "pgbouncer is not installed (Debian package `pgbouncer`)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgBouncer:
    """One PgBouncer in `mode`, forwarding every database name to the test PostgreSQL."""

    def __init__(self, mode: PoolMode) -> None:
        self.mode = mode
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"heroapi-pgbouncer-{mode}-"))
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """A URL of `database` (on the test PostgreSQL) through this PgBouncer."""
        server = make_url(SERVER_URLS["postgresql"])
        return server.set(host="127.0.0.1", port=self.port, database=database).render_as_string(
            hide_password=False
        )

    def through(self, direct_url: str) -> str:
        """`direct_url` (a database on the test PostgreSQL) through this PgBouncer."""
        return self.url(make_url(direct_url).database or "postgres")

    @property
    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> "PgBouncer":
        server = make_url(SERVER_URLS["postgresql"])
        user = server.username or "postgres"
        (self.directory / "users.txt").write_text(f'"{user}" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={server.host or "127.0.0.1"} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.directory / "users.txt"}
pool_mode = {self.mode}
default_pool_size = {SERVER_POOL_SIZE}
max_client_conn = 400
logfile = {self.directory / "pgbouncer.log"}
"""
        )
        runs_as: dict[str, object] = {}
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, postgres.pw_uid, postgres.pw_gid)
            runs_as = {"user": postgres.pw_uid, "group": postgres.pw_gid, "extra_groups": []}
        self._process = subprocess.Popen(
            [PGBOUNCER, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **runs_as,  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start-up:\n{self.log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen within 15 s:\n{self.log[-2000:]}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: dict[PoolMode, PgBouncer] = {}


def shared(mode: PoolMode) -> PgBouncer:
    """The suite's PgBouncer in `mode`: started at the first call, stopped when the suite ends."""
    if mode not in _shared:
        _shared[mode] = PgBouncer(mode).start()
        atexit.register(_shared[mode].stop)
    return _shared[mode]
