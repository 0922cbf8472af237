"""Time from launch to a ready answer: `heroapi serve` against the FastAPI tutorial app.

heroapi is measured on an up-to-date SQLite database (migrated once before the rounds): the
usual restart of a deployed service. The yardstick is the tutorial's Hero app
(`../shared/bench/seed_app.py`, see that folder's README) started by plain `uvicorn`, in the
benchmark harness's venv ($BENCH_HOME/.venv, made by `../shared/bench/setup.sh`), which has
SQLModel. Both are started alternately, N rounds after one warm-up round each (not counted: it
compiles bytecode and fills the page cache), each on a free loopback port with a throwaway
database, and are polled until they answer 200: heroapi's `/health/ready`, the tutorial's
`/heroes/` (its database is ready once that answers). Prints each round, then the medians and
their ratio; `--json` prints one JSON object instead.

Both read their modules from bytecode cached in a private folder (PYTHONPYCACHEPREFIX, filled by
the warm-up), as from any installation that compiled it (pip does; `uv sync` only with
`--compile-bytecode`). `--bytecode as-is` keeps the shell's environment instead: in a venv
installed without bytecode and with PYTHONDONTWRITEBYTECODE set, every start compiles its
dependencies' source (~2 s of heroapi's on a 2-core machine).

    PYTHONPATH=src .venv/bin/python scripts/startup_time.py --rounds 5
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT.parent / "shared" / "bench"
BENCH_HOME = Path(os.environ.get("BENCH_HOME") or Path.home() / ".cache" / "heroapi-bench")
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]  # "{port}" is replaced by the port
    environment: dict[str, str]
    directory: Path
    ready_path: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def time_to_ready(contender: Contender, timeout: float) -> float:
    """Seconds from launching `contender` to its first 200; it is stopped before returning."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in contender.command]
    log = contender.directory / f"{contender.name}.log"
    with log.open("a") as output:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 (our interpreters and modules, by path)
            command,
            env=contender.environment,
            cwd=contender.directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if answers(port, contender.ready_path):
                return time.perf_counter() - started
            if process.poll() is not None:
                break
            time.sleep(POLL_SECONDS)
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{contender.name} was not ready within {timeout} s:\n{tail}")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def clean_environment(directory: Path, *, cached_bytecode: bool) -> dict[str, str]:
    """The shell's environment without heroapi's settings (each contender gets only its own),
    with its bytecode cached under `directory` unless `cached_bytecode` is False."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HEROAPI_") and name != "DATABASE_URL"
    }
    if cached_bytecode:
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        environment["PYTHONPYCACHEPREFIX"] = str(directory / "bytecode")
    return environment


def contenders(
    directory: Path, tutorial_python: Path, *, cached_bytecode: bool
) -> tuple[Contender, Contender]:
    environment = clean_environment(directory, cached_bytecode=cached_bytecode)
    heroapi_environment = environment | {
        "DATABASE_URL": f"sqlite:///{directory / 'heroapi.db'}",
        "HEROAPI_ACCESS_LOG": "false",
    }
    heroapi = Contender(
        "heroapi",
        [sys.executable, "-m", "heroapi", "serve", "--host", "127.0.0.1", "--port", "{port}"],
        heroapi_environment,
        directory,
        "/health/ready",
    )
    tutorial_environment = environment | {"REF_DB": str(directory / "tutorial.db")}
    tutorial_environment["PYTHONPATH"] = str(BENCH_DIR)
    uvicorn = [str(tutorial_python), "-m", "uvicorn", "seed_app:app", "--no-access-log"]
    tutorial = Contender(
        "tutorial",
        [*uvicorn, "--host", "127.0.0.1", "--port", "{port}"],
        tutorial_environment,
        directory,
        "/heroes/",
    )
    # Up to date before the rounds: what is measured is a restart, not a first migration.
    subprocess.run(
        [sys.executable, "-m", "heroapi", "db", "upgrade"],
        env=heroapi_environment,
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return heroapi, tutorial


def measure(
    rounds: int, tutorial_python: Path, *, cached_bytecode: bool = True, timeout: float = 30
) -> dict[str, object]:
    """Both contenders' start-up times over `rounds` alternating rounds, medians and ratio."""
    times: dict[str, list[float]] = {"heroapi": [], "tutorial": []}
    with tempfile.TemporaryDirectory(prefix="heroapi-startup-") as name:
        pair = contenders(Path(name), tutorial_python, cached_bytecode=cached_bytecode)
        for contender in pair:  # warm-up, not counted
            time_to_ready(contender, timeout)
        for round_number in range(rounds):
            order = pair if round_number % 2 == 0 else pair[::-1]
            for contender in order:
                times[contender.name].append(time_to_ready(contender, timeout))
    heroapi = statistics.median(times["heroapi"])
    tutorial = statistics.median(times["tutorial"])
    return {
        "rounds": rounds,
        "heroapi_seconds": times["heroapi"],
        "tutorial_seconds": times["tutorial"],
        "heroapi_median": heroapi,
        "tutorial_median": tutorial,
        "ratio": heroapi / tutorial,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, choices=range(1, 51), metavar="1..50")
    parser.add_argument(
        "--tutorial-python",
        type=Path,
        default=BENCH_HOME / ".venv" / "bin" / "python",
        help="a Python with fastapi, sqlmodel and uvicorn (default: the bench harness's venv)",
    )
    parser.add_argument(
        "--bytecode",
        choices=["cached", "as-is"],
        default="cached",
        help="cached: both from bytecode in a private cache (default); as-is: the shell's way",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    if not arguments.tutorial_python.exists():
        parser.error(
            f"{arguments.tutorial_python} does not exist: run ../shared/bench/setup.sh "
            "or give --tutorial-python"
        )
    result = measure(
        arguments.rounds, arguments.tutorial_python, cached_bytecode=arguments.bytecode == "cached"
    )
    if arguments.json:
        print(json.dumps(result))
        return
    for name in ("heroapi", "tutorial"):
        seconds = result[f"{name}_seconds"]
        assert isinstance(seconds, list)
        print(f"{name:9} " + " ".join(f"{value:.2f}" for value in seconds))
    print(
        f"median: heroapi {result['heroapi_median']:.2f} s, tutorial "
        f"{result['tutorial_median']:.2f} s, ratio {result['ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
