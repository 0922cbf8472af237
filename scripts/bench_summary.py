"""The table `make bench` ends with (scripts/bench.py runs the harness): the harness's results
(../shared/bench/run.py's results-<time>.json), by backend, against the performance bars, each
miss marked in its cell and listed on the last line. Stdlib only; reads, never runs."""

from dataclasses import dataclass, field
from typing import Any

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
