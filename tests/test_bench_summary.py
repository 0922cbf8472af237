"""`make bench`'s one table (scripts/bench_summary.py): the harness's results, by backend,
against the performance bars, each miss marked where it is and listed last; and what
scripts/bench.py gives each run. Fed small results shaped as the harness writes them
(../shared/bench/run.py's results-<time>.json); nothing is run."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CONTEXT = {"machine": "a CPU, 2 cores, Linux 6", "date": "2026-12-08 00:00 UTC", "commit": "abc12"}


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py, importable by NAME as when the scripts run (their folder first on
    sys.path): bench.py imports bench_summary."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


table = load_script("bench_summary")
bench = load_script("bench")
SCENARIOS = tuple(table.BARS)


def figures(ok_rps: float, p99_ms: float = 10.0, non2xx: int = 0) -> dict[str, Any]:
    """One target's figures in one scenario, as the harness records them (the fields read)."""
    return {
        "requests": int(ok_rps * 10),
        "rps": ok_rps,
        "ok_rps": ok_rps,
        "p50_ms": p99_ms / 3,
        "p99_ms": p99_ms,
        "status_codes": {"200": int(ok_rps * 10)},
        "non2xx": non2xx,
        "socket_errors_total": 0,
        "server_cpu_ms_per_req": 0.3,
    }


def target(rates: dict[str, float], peak_rss_mb: float = 80.0) -> dict[str, Any]:
    return {
        "scenarios": {scenario: figures(rate) for scenario, rate in rates.items()},
        "peak_rss_mb": peak_rss_mb,
        "conformance_passed": "21/21",
        "log_findings": {"tracebacks": 0, "database_is_locked": 0},
    }


def results(backend: str, targets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run's results: every scenario of every target given, the harness's meta around them."""
    scenarios = list(next(iter(targets.values()))["scenarios"])
    meta = {
        "backend": backend,
        "scenarios": scenarios,
        "connections": 32,
        "rows": 100000,
        "duration_s": 10.0,
        "warmup_s": 3.0,
        "rounds": 1,
    }
    return {"meta": meta, "targets": targets, "ratios": {}}


def passing(backend: str, scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """A run that clears every bar: heroapi at 40x the seed and 1.1x the floor, less memory."""
    return results(
        backend,
        {
            "seed": target(dict.fromkeys(scenarios, 100.0), peak_rss_mb=120.0),
            "floor": target(dict.fromkeys(scenarios, 4000.0)),
            "project": target(dict.fromkeys(scenarios, 4400.0), peak_rss_mb=85.0),
        },
    )


def cell(summary: Any, column: str, row: str) -> str:
    """The cell in `column` of the first table with that column, on the row starting `row`."""
    header: list[str] | None = None
    lines: list[str] = summary.lines
    for line in lines:
        cells = [text.strip() for text in line.strip("|").split("|")]
        if line.startswith("| ") and column in cells:
            header = cells
        elif header is not None and line.startswith("| ") and cells[0] == row:
            return cells[header.index(column)]
    raise AssertionError(f"no cell {column!r}/{row!r} in:\n" + "\n".join(lines))


def test_runs_that_clear_every_bar_say_so_and_count_every_bar() -> None:
    runs = {backend: passing(backend) for backend in ("sqlite", "postgresql", "mariadb")}
    summary = table.summarize(runs, CONTEXT)
    assert summary.missed == []
    assert summary.unmeasured == []
    # Per backend: /seed, /floor and p99 in each of 9 scenarios, then peak RSS and non-2xx.
    assert summary.judged == 3 * (9 * 3 + 2)
    assert summary.closing_line() == "bars missed: none of 87"
    assert cell(summary, "SQLite /seed", "get_id") == "44.00"
    assert cell(summary, "MariaDB /floor", "item_post") == "1.10"


def test_the_header_names_machine_date_commit_and_each_runs_settings() -> None:
    runs = {"sqlite": passing("sqlite"), "postgresql": passing("postgresql")}
    runs["postgresql"]["meta"]["rows"] = 20000
    text = "\n".join(table.summarize(runs, CONTEXT).lines)
    for value in CONTEXT.values():
        assert value in text
    assert "- SQLite: 100000 heroes, 32 connections, 10 s per scenario" in text
    assert "- PostgreSQL: 20000 heroes, 32 connections, 10 s per scenario" in text


@pytest.mark.parametrize(
    ("database", "scenario", "project", "missed"),
    [
        ("sqlite", "get_id", 3990.0, True),  # reads on SQLite: at least the floor
        ("sqlite", "get_id", 4000.0, False),
        ("postgresql", "patch", 2790.0, True),  # writes on PostgreSQL: 0.7 of it
        ("postgresql", "patch", 2800.0, False),
        ("mariadb", "item_post", 1990.0, True),  # an item on MariaDB: half of it
        ("mariadb", "list_deep", 2400.0, False),  # deep reads on MariaDB: 0.6 of it
    ],
)
def test_a_ratio_to_the_floor_under_its_bar_is_marked_in_its_cell_and_listed(
    database: str, scenario: str, project: float, missed: bool
) -> None:
    """(`database`, not `backend`: the suite's backend selection keys on that name.)"""
    run = passing(database)
    run["targets"]["project"]["scenarios"][scenario] = figures(project)
    summary = table.summarize({database: run}, CONTEXT)
    label = table.LABELS[database]
    shown = cell(summary, f"{label} /floor", scenario)
    assert ("✗" in shown) is missed, shown
    assert [miss.startswith(f"{label} {scenario} /floor") for miss in summary.missed] == (
        [True] if missed else []
    )


def test_the_users_page_must_beat_the_seed_thirtyfold_the_others_eightfold() -> None:
    run = passing("sqlite")
    for scenario in ("users_list", "user_id"):
        run["targets"]["seed"]["scenarios"][scenario] = figures(4400.0 / 29)
    summary = table.summarize({"sqlite": run}, CONTEXT)
    assert cell(summary, "SQLite /seed", "users_list") == "29.00 ✗ (bar 30)"
    assert cell(summary, "SQLite /seed", "user_id") == "29.00"
    assert summary.missed == ["SQLite users_list /seed 29.00 (< 30)"]


@pytest.mark.parametrize(
    ("floor_p99", "project_p99", "missed"),
    [(10.0, 25.0, False), (10.0, 25.5, True), (40.0, 50.0, False), (40.0, 50.5, True)],
)
def test_p99_is_held_to_25_ms_or_a_quarter_over_the_floors(
    floor_p99: float, project_p99: float, missed: bool
) -> None:
    run = passing("postgresql")
    run["targets"]["floor"]["scenarios"]["post"]["p99_ms"] = floor_p99
    run["targets"]["project"]["scenarios"]["post"]["p99_ms"] = project_p99
    summary = table.summarize({"postgresql": run}, CONTEXT)
    shown = cell(summary, "PostgreSQL", "post")
    assert shown.endswith(f" / {max(25.0, 1.25 * floor_p99):.1f}"), shown
    assert ("✗" in shown) is missed
    assert len(summary.missed) == missed


def test_pgbouncer_is_held_to_a_share_of_heroapis_own_direct_rate() -> None:
    pooled = results(
        "postgresql",
        {
            "floor": target(dict.fromkeys(table.BARS, 3000.0)),
            "project": target({**dict.fromkeys(table.BARS, 3300.0), "get_id": 3000.0}),
        },
    )
    summary = table.summarize({"postgresql": passing("postgresql"), "pgbouncer": pooled}, CONTEXT)
    # Judged on the rates; in brackets each run's heroapi/floor (1.1 direct) over the other's.
    assert cell(summary, "PgBouncer /direct", "list_first") == "0.75 [1.00]"
    assert cell(summary, "PgBouncer /direct", "get_id") == "0.68 ✗ (bar 0.7) [0.91]"
    assert summary.missed == ["PgBouncer get_id /direct 0.68 (< 0.7)"]
    # Its memory is held to the direct run's seed, the one it has none of its own.
    assert cell(summary, "seed peak RSS MB", "PgBouncer") == "120.0 (PostgreSQL run)"


def test_pgbouncer_without_a_direct_run_is_not_measured_rather_than_missed() -> None:
    summary = table.summarize({"pgbouncer": passing("postgresql")}, CONTEXT)
    assert cell(summary, "PgBouncer /direct", "get_id") == "n/a"
    assert not any("/direct" in miss for miss in summary.missed)
    assert any("no direct PostgreSQL run" in why for why in summary.unmeasured)


def test_memory_above_the_seeds_and_any_non_2xx_are_misses() -> None:
    run = passing("mariadb")
    run["targets"]["project"]["peak_rss_mb"] = 121.5
    run["targets"]["project"]["scenarios"]["patch"] = figures(4400.0, non2xx=3)
    summary = table.summarize({"mariadb": run}, CONTEXT)
    assert cell(summary, "heroapi peak RSS MB", "MariaDB") == "121.5 ✗"
    assert cell(summary, "heroapi non-2xx / socket errors", "MariaDB") == "3 ✗ / 0"
    assert summary.missed == ["MariaDB peak RSS MB 121.5 (> 120.0)", "MariaDB non-2xx 3 (> 0)"]


def test_a_seed_too_slow_to_answer_within_the_run_is_not_measured_rather_than_judged() -> None:
    """The harness's "too short": fewer responses than connections, its req/s mean nothing."""
    run = passing("sqlite")
    run["targets"]["seed"]["scenarios"]["users_list"]["requests"] = 12
    summary = table.summarize({"sqlite": run}, CONTEXT)
    assert cell(summary, "SQLite /seed", "users_list") == "n/a"
    assert summary.missed == []
    assert summary.unmeasured == ["SQLite users_list /seed (seed too short)"]
    assert "Not measured: 1" in summary.closing_line()


def test_only_the_scenarios_run_are_shown() -> None:
    summary = table.summarize({"sqlite": passing("sqlite", ("get_id", "post"))}, CONTEXT)
    rows = [line.split("|")[1].strip() for line in summary.lines if line.startswith("| ")]
    assert set(rows) == {"scenario", "get_id", "post", "backend", "SQLite"}


def test_each_run_gets_heroapi_serve_on_its_url_and_the_pgbouncer_run_only_floor_and_heroapi() -> (
    None
):
    passed_on = ["--duration", "5", "--targets", "seed,ceiling,floor,fastcrud,project"]
    direct = bench.harness_arguments("mariadb", passed_on)
    assert direct[-len(passed_on) :] == passed_on  # what is passed on comes last, and wins
    assert "DATABASE_URL=mysql://root@127.0.0.1:3306/{db}" in direct
    assert "heroapi serve --host {host} --port {port}" in direct
    pooled = bench.harness_arguments("pgbouncer", passed_on, 6543)
    assert pooled[pooled.index("--pg-port") + 1] == "6543"
    assert "DATABASE_URL=postgresql://postgres@127.0.0.1:6543/{db}" in pooled
    assert pooled[-2:] == ["--targets", "floor,project"]


def test_the_runs_get_heroapis_defaults_whatever_the_shell_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEROAPI_DATABASE_POOLER", "none")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    environment = bench.default_environment()
    assert "HEROAPI_DATABASE_POOLER" not in environment
    assert "DATABASE_URL" not in environment
    assert environment["PATH"]
