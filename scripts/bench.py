"""The whole benchmark table in one command: `../shared/bench/run.py` on SQLite, PostgreSQL and
MariaDB, and on PostgreSQL through a PgBouncer in transaction mode started here, then one
markdown table of the figures the performance bars are about, each missed bar marked.

Each run is the harness's own (its table printed as it goes, its results JSON in
$BENCH_HOME/out/); heroapi runs as a user starts it, `heroapi serve`, on default settings but
for DATABASE_URL (HEROAPI_* and DATABASE_URL are taken out of the environment the runs see).
Behind PgBouncer heroapi finds the pooler by itself (HEROAPI_DATABASE_POOLER=auto, the default)
and prepares its statements unnamed; nothing is set for it. Arguments this script does not know
go to every run (`--duration 5`, `--rows 20000`, `--targets seed,ceiling,floor,fastcrud,project`);
the PgBouncer run measures the floor and heroapi only (the seed's and the anchors' figures there
would be those of other apps through a pooler).

    python3 scripts/bench.py --duration 2 --warmup 1 --rows 5000 --users 200
    python3 scripts/bench.py --backends sqlite,mariadb
    python3 scripts/bench.py --results sqlite=PATH --results postgresql=PATH   # a table, no run

The summary (bench_summary.py: the bars, the table) goes to stdout and to summary-<time>.md
beside the results. The exit status is 0 when every run produced results, missed bars or not (a
measurement, not a test); the last line says which bars were missed.
"""

import argparse
import datetime
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_summary import BACKENDS, LABELS, summarize

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "run.py"
PGBOUNCER = "/usr/sbin/pgbouncer"
POSTGRESQL_PORT = 5432
MARIADB_PORT = 3306

DEFAULTS = ["--scenarios", "all", "--targets", "seed,floor,project"]
POOLED_TARGETS = ["--targets", "floor,project"]
PROJECT = [
    "--project-dir",
    str(ROOT),
    "--project-cmd",
    "heroapi serve --host {host} --port {port}",
    "--project-prepare",
    "heroapi db upgrade",
]


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}"


def commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(  # noqa: S603 (git, on this checkout)
            ["git", "-C", str(ROOT), *arguments],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    described = git("log", "-1", "--format=%h (%cs)")
    return described + (", with uncommitted changes" if git("status", "--porcelain") else "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def pgbouncer() -> Iterator[int]:
    """A PgBouncer in transaction mode on a free loopback port, every database name forwarded
    to the PostgreSQL at 127.0.0.1:5432, PgBouncer's defaults otherwise (`default_pool_size`
    20, `max_client_conn` 100); yields its port, stopped by its PID on the way out. It refuses
    to run as root: then it runs as `postgres`, in a directory that user owns."""
    directory = Path(tempfile.mkdtemp(prefix="heroapi-bench-pgbouncer-"))
    port = free_port()
    (directory / "users.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        f"[databases]\n* = host=127.0.0.1 port={POSTGRESQL_PORT}\n\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'users.txt'}\npool_mode = transaction\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    owner: dict[str, Any] = {}
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, postgres.pw_uid, postgres.pw_gid)
        owner = {"user": postgres.pw_uid, "group": postgres.pw_gid, "extra_groups": []}
    # A session of its own: a Ctrl-C in the terminal reaches the runs, and this stops it after.
    process = subprocess.Popen(  # noqa: S603 (Debian's pgbouncer, on our own config)
        [PGBOUNCER, str(directory / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **owner,
    )
    try:
        wait_listening(process, port)
        log(f"PgBouncer {process.pid} in transaction mode on 127.0.0.1:{port}")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def wait_listening(process: "subprocess.Popen[bytes]", port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited at start-up (status {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not listen within 15 s")


def harness_arguments(backend: str, passed_on: list[str], pooler_port: int = 0) -> list[str]:
    """run.py's arguments for one backend: the defaults, the project, then what was passed on
    (which wins: the harness takes an option's last value); the PgBouncer run's targets last."""
    if backend == "pgbouncer":
        return [
            "--backend", "postgresql", "--pg-port", str(pooler_port), *DEFAULTS, *PROJECT,
            "--project-env", f"DATABASE_URL=postgresql://postgres@127.0.0.1:{pooler_port}/{{db}}",
            *passed_on, *POOLED_TARGETS,
        ]  # fmt: skip
    url = {
        "sqlite": "sqlite:///{db}",
        "postgresql": f"postgresql://postgres@127.0.0.1:{POSTGRESQL_PORT}/{{db}}",
        "mariadb": f"mysql://root@127.0.0.1:{MARIADB_PORT}/{{db}}",
    }[backend]
    return ["--backend", backend, *DEFAULTS, *PROJECT, "--project-env", f"DATABASE_URL={url}",
            *passed_on]  # fmt: skip


def default_environment() -> dict[str, str]:
    """This process's environment without heroapi's settings: the runs get its defaults."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HEROAPI_") and name != "DATABASE_URL"
    }


def run_harness(arguments: list[str]) -> Path | None:
    """One harness run, its output passed on as it comes; the path of its results JSON (the
    `JSON: PATH` line it prints last), None if it gave none."""
    process = subprocess.Popen(  # noqa: S603 (the harness, by path, with this interpreter)
        [sys.executable, str(HARNESS), *arguments],
        stdout=subprocess.PIPE,
        text=True,
        env=default_environment(),
    )
    results = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            found = re.match(r"JSON: (\S+\.json)$", line.rstrip("\n"))
            if found:
                results = Path(found.group(1))
        process.wait()
    except KeyboardInterrupt:
        # The harness had the Ctrl-C too: it stops its servers and drops its databases.
        try:
            process.wait(60)
        finally:
            raise
    finally:
        if process.poll() is None:  # stopped by SIGTERM: so is the harness, which then cleans up
            process.terminate()
            process.wait(60)
    return results if process.returncode == 0 else None


def run_backend(backend: str, passed_on: list[str]) -> Path | None:
    log(f"{LABELS[backend]}: starting the harness")
    if backend != "pgbouncer":
        return run_harness(harness_arguments(backend, passed_on))
    if not Path(PGBOUNCER).exists():
        log(f"PgBouncer: not run, {PGBOUNCER} is missing (Debian package `pgbouncer`)")
        return None
    with pgbouncer() as port:
        return run_harness(harness_arguments(backend, passed_on, port))


def log(message: str) -> None:
    print(f"[bench.py {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_arguments() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma list from sqlite,postgresql,pgbouncer,mariadb (default: all four)",
    )
    parser.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="BACKEND=PATH",
        help="summarize these results instead of running (repeatable)",
    )
    arguments, passed_on = parser.parse_known_args()
    chosen = [name for name in arguments.backends.split(",") if name]
    for name in chosen:
        if name not in BACKENDS:
            parser.error(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
    arguments.backends = [name for name in BACKENDS if name in chosen]
    return arguments, passed_on


def main() -> int:
    arguments, passed_on = parse_arguments()
    started = time.monotonic()
    paths = {name: Path(path) for name, _, path in (r.partition("=") for r in arguments.results)}
    failed = []
    # SIGTERM (make stopped, a CI timeout) unwinds like Ctrl-C: runs ended, PgBouncer stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for backend in [] if paths else arguments.backends:
            path = run_backend(backend, passed_on)
            if path is None:
                failed.append(LABELS[backend])
            else:
                paths[backend] = path
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    runs = {backend: json.loads(path.read_text()) for backend, path in paths.items()}
    if not runs:
        log("no run produced results")
        return 1
    now = datetime.datetime.now(datetime.UTC)
    context = {
        "machine": machine(),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "results": ", ".join(f"{LABELS[b]} {p}" for b, p in paths.items()),
    }
    if not arguments.results:
        context["wall time"] = f"{(time.monotonic() - started) / 60:.1f} min"
    if failed:
        context["runs that failed"] = ", ".join(failed)
    summary = summarize(runs, context)
    text = "\n".join(summary.lines) + "\n"
    out = next(iter(paths.values())).parent / f"summary-{now.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(text)
    print("\n".join(summary.lines[:-1]))  # the closing line comes last, after the file's path
    print(f"summary: {out}")
    print(summary.closing_line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
