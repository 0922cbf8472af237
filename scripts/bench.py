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

The summary goes to stdout and to summary-<time>.md beside the results. The exit status is 0
when every run produced results, missed bars or not (a measurement, not a test); the last line
says which bars were missed.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench" / "run.py"
PGBOUNCER = "/usr/sbin/pgbouncer"
POSTGRESQL_PORT = 5432
MARIADB_PORT = 3306

BACKENDS = ("sqlite", "postgresql", "pgbouncer", "mariadb")  # run in this order: PgBouncer's
# beside the direct PostgreSQL run it is compared with; shown with PgBouncer last
SHOWN = ("sqlite", "postgresql", "mariadb", "pgbouncer")
LABELS = {
    "sqlite": "SQLite",
    "postgresql": "PostgreSQL",
    "mariadb": "MariaDB",
    "pgbouncer": "PgBouncer",
}
DIRECT = ("sqlite", "postgresql", "mariadb")
# The run whose heroapi (and seed) a PgBouncer figure is held against.
DIRECT_OF = {"pgbouncer": "postgresql"}
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


@dataclass(frozen=True)
class Bar:
    """heroapi's 2xx req/s at least `over_seed` times the seed's and `over_floor[backend]` times
    the floor's, in the same run."""

    over_seed: float
    over_floor: dict[str, float]


READS = Bar(8.0, {"sqlite": 1.0, "postgresql": 0.8, "mariadb": 0.6})
WRITES = Bar(8.0, {"sqlite": 0.9, "postgresql": 0.7, "mariadb": 0.5})
BARS = {
    "get_id": READS,
    "list_first": READS,
    "list_deep": READS,
    "post": WRITES,
    "patch": WRITES,
    "users_list": Bar(30.0, READS.over_floor),
    "items_list": READS,
    "user_id": READS,
    "item_post": Bar(8.0, {"sqlite": 0.8, "postgresql": 0.6, "mariadb": 0.5}),
}
P99_MS = 25.0  # heroapi's p99 at most max(P99_MS, P99_OVER_FLOOR x the floor's p99)
P99_OVER_FLOOR = 1.25
POOLED_OVER_DIRECT = 0.7  # heroapi through PgBouncer: at least this share of its direct req/s
NOT_MEASURED = "n/a"


# ------------------------------------------------------------------------- the summary


def figure(value: float) -> str:
    """ms and MB to a tenth, counts whole."""
    return str(value) if isinstance(value, int) else f"{value:.1f}"


@dataclass
class Summary:
    """The table's lines, with every bar judged and every figure that could not be."""

    lines: list[str] = field(default_factory=list)
    judged: int = 0
    missed: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)

    def judge(self, where: str, value: float, bar: float, *, at_most: bool = False) -> str:
        """`value` as a cell, marked ✗ when it misses `bar`: a ratio at least `bar`, or with
        `at_most` a figure (ms, MB, a count) at most `bar`."""
        self.judged += 1
        text, limit = (figure(value), figure(bar)) if at_most else (f"{value:.2f}", f"{bar:g}")
        if (value > bar) if at_most else (value < bar):
            self.missed.append(f"{where} {text} ({'>' if at_most else '<'} {limit})")
            return f"{text} ✗"
        return text

    def unknown(self, where: str, why: str) -> str:
        self.unmeasured.append(f"{where} ({why})")
        return NOT_MEASURED

    def closing_line(self) -> str:
        line = (
            f"bars missed: {len(self.missed)} of {self.judged}"
            + (f": {'; '.join(self.missed)}" if self.missed else "")
            if self.missed
            else f"bars missed: none of {self.judged}"
        )
        if self.unmeasured:
            line += f". Not measured: {len(self.unmeasured)} ({'; '.join(self.unmeasured)})"
        return line


def scenario_of(doc: dict[str, Any], target: str, scenario: str) -> dict[str, Any] | None:
    """A target's figures in one scenario of a run, None if it has none."""
    figures = doc["targets"].get(target, {}).get("scenarios", {}).get(scenario)
    if not figures or "error" in figures:
        return None
    return dict(figures)


def throughput(doc: dict[str, Any], target: str, scenario: str) -> float | str:
    """2xx req/s of a target in a scenario, or why there is no figure."""
    figures = scenario_of(doc, target, scenario)
    if figures is None:
        return f"no {target} figures"
    if figures["requests"] < doc["meta"]["connections"]:
        return f"{target} too short"  # the harness's note: one request outlasted the measurement
    return float(figures["ok_rps"])


def ratio_cell(
    summary: Summary, where: str, over: float | str, under: float | str, bar: float
) -> str:
    for figure in (over, under):
        if isinstance(figure, str):
            return summary.unknown(where, figure)
    assert isinstance(over, float)
    assert isinstance(under, float)
    if not under:
        return summary.unknown(where, "0 req/s under it")
    cell = summary.judge(where, over / under, bar)
    return f"{cell} (bar {bar:g})" if cell.endswith("✗") else cell


def p99_cell(summary: Summary, where: str, doc: dict[str, Any], scenario: str) -> str:
    project = scenario_of(doc, "project", scenario)
    floor = scenario_of(doc, "floor", scenario)
    if project is None or floor is None:
        return summary.unknown(where, "no project or floor figures")
    bar = max(P99_MS, P99_OVER_FLOOR * floor["p99_ms"])
    return summary.judge(where, project["p99_ms"], bar, at_most=True) + f" / {bar:.1f}"


def throughput_rows(
    summary: Summary, runs: dict[str, dict[str, Any]], scenarios: list[str]
) -> None:
    direct = [backend for backend in DIRECT if backend in runs]
    header = ["scenario"]
    for backend in direct:
        header += [f"{LABELS[backend]} /seed", f"{LABELS[backend]} /floor"]
    if "pgbouncer" in runs:
        header.append("PgBouncer /direct")
    summary.lines += table_head(header)
    for scenario in scenarios:
        cells = [scenario]
        for backend in direct:
            doc, where = runs[backend], f"{LABELS[backend]} {scenario}"
            project = throughput(doc, "project", scenario)
            bar = BARS[scenario]
            for anchor, minimum in (("seed", bar.over_seed), ("floor", bar.over_floor[backend])):
                under = throughput(doc, anchor, scenario)
                cells.append(ratio_cell(summary, f"{where} /{anchor}", project, under, minimum))
        if "pgbouncer" in runs:
            cells.append(pooled_cell(summary, runs, scenario))
        summary.lines.append(table_row(cells))


def pooled_cell(summary: Summary, runs: dict[str, dict[str, Any]], scenario: str) -> str:
    """heroapi through PgBouncer over heroapi direct: two runs, at two times. In brackets the
    same over the floor's of each run, which a neighbour's load on the machine moves less."""
    pooled = runs["pgbouncer"]
    direct = runs.get("postgresql")
    if direct is None:
        return summary.unknown(f"PgBouncer {scenario} /direct", "no direct PostgreSQL run")
    rates = [
        throughput(doc, target, scenario)
        for doc in (pooled, direct)
        for target in ("project", "floor")
    ]
    where = f"PgBouncer {scenario} /direct"
    cell = ratio_cell(summary, where, rates[0], rates[2], POOLED_OVER_DIRECT)
    known = [rate for rate in rates if isinstance(rate, float) and rate]
    if len(known) == len(rates):
        pooled_project, pooled_floor, direct_project, direct_floor = known
        cell += f" [{pooled_project / pooled_floor / (direct_project / direct_floor):.2f}]"
    return cell


def p99_rows(summary: Summary, runs: dict[str, dict[str, Any]], scenarios: list[str]) -> None:
    summary.lines += table_head(["scenario", *(LABELS[backend] for backend in runs)])
    for scenario in scenarios:
        cells = [scenario]
        for backend, doc in runs.items():
            cells.append(p99_cell(summary, f"{LABELS[backend]} {scenario} p99", doc, scenario))
        summary.lines.append(table_row(cells))


def errors_of(target: dict[str, Any]) -> tuple[int, int]:
    """Non-2xx answers and socket errors of a target over all its scenarios."""
    scenarios = [
        figures for figures in target.get("scenarios", {}).values() if "error" not in figures
    ]
    return (
        sum(figures.get("non2xx", 0) for figures in scenarios),
        sum(figures.get("socket_errors_total", 0) for figures in scenarios),
    )


def backend_rows(summary: Summary, runs: dict[str, dict[str, Any]]) -> None:
    summary.lines += table_head(
        [
            "backend",
            "heroapi peak RSS MB",
            "seed peak RSS MB",
            "heroapi non-2xx / socket errors",
            "heroapi conformance",
            "heroapi tracebacks",
        ]
    )
    for backend, doc in runs.items():
        label = LABELS[backend]
        project = doc["targets"].get("project", {})
        seed_run = runs.get(DIRECT_OF.get(backend, backend), {"targets": {}})
        seed = seed_run["targets"].get("seed", {})
        rss = project.get("peak_rss_mb")
        if rss is None or seed.get("peak_rss_mb") is None:
            rss_cell = summary.unknown(f"{label} peak RSS", "no heroapi or seed figure")
        else:
            rss_cell = summary.judge(f"{label} peak RSS MB", rss, seed["peak_rss_mb"], at_most=True)
        users_app = seed.get("users_server", {}).get("peak_rss_mb")
        seed_cell = f"{seed.get('peak_rss_mb', 'n/a')}" + (
            f" (+{users_app} users app)" if users_app else ""
        )
        if backend in DIRECT_OF:
            seed_cell += f" ({LABELS[DIRECT_OF[backend]]} run)"
        non2xx, socket_errors = errors_of(project)
        errors_cell = summary.judge(f"{label} non-2xx", non2xx, 0, at_most=True)
        tracebacks = project.get("log_findings", {}).get("tracebacks", NOT_MEASURED)
        cells = [
            label,
            rss_cell,
            seed_cell,
            f"{errors_cell} / {socket_errors}",
            str(project.get("conformance_passed", NOT_MEASURED)),
            str(tracebacks),
        ]
        summary.lines.append(table_row(cells))
        if project.get("error"):
            summary.unknown(f"{label} heroapi", project["error"])


def table_head(header: list[str]) -> list[str]:
    return ["", table_row(header), "|" + "---|" * len(header)]


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def run_settings(doc: dict[str, Any]) -> str:
    meta = doc["meta"]
    users = f", {meta['users']} users x {meta['items_per_user']} items" if "users" in meta else ""
    return (
        f"{meta['rows']} heroes{users}, {meta['connections']} connections, "
        f"{meta['duration_s']:g} s per scenario after {meta['warmup_s']:g} s of warm-up, "
        f"{meta['rounds']} round(s)"
    )


def summarize(runs: dict[str, dict[str, Any]], context: dict[str, str]) -> Summary:
    """One markdown table of every run's results (the harness's JSON, by backend), headed by
    `context` (machine, date, commit, ...), each missed bar marked ✗ and listed last."""
    ordered = {backend: runs[backend] for backend in SHOWN if backend in runs}
    scenarios = [s for s in BARS if any(s in doc["meta"]["scenarios"] for doc in ordered.values())]
    summary = Summary(["## heroapi benchmark: the whole table", ""])
    summary.lines += [f"- {name}: {value}" for name, value in context.items()]
    settings: dict[str, list[str]] = {}
    for backend, doc in ordered.items():
        settings.setdefault(run_settings(doc), []).append(LABELS[backend])
    summary.lines += [f"- {', '.join(labels)}: {text}" for text, labels in settings.items()]
    summary.lines += [
        "",
        "heroapi's 2xx req/s over the seed's and the floor's in the same run, and through "
        f"PgBouncer over its own direct PostgreSQL run (bar {POOLED_OVER_DIRECT:g}; in brackets "
        "heroapi/floor through PgBouncer over heroapi/floor direct, less moved by other load); "
        "✗ marks a missed bar, n/a a figure the run could not give.",
    ]
    throughput_rows(summary, ordered, scenarios)
    summary.lines += [
        "",
        f"heroapi's p99 ms / its bar, max({P99_MS:g}, {P99_OVER_FLOOR:g} x the floor's p99) "
        "in the same run:",
    ]
    p99_rows(summary, ordered, scenarios)
    summary.lines += ["", "Peak RSS (bar: the seed's), errors over all scenarios (bar: 0):"]
    backend_rows(summary, ordered)
    summary.lines += ["", summary.closing_line()]
    return summary


# ------------------------------------------------------------------------------ the runs


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
