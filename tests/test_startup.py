"""`heroapi serve` starts fast on an up-to-date database (one Python start-up, no Alembic), and
still migrates exactly once when several processes start together on a new one."""

import gc
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx2 as httpx
import pytest

from heroapi.revisions import head_revision
from tests.conftest import make_settings, running_app
from tests.server import LiveServer, _wait_until_up, free_port

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 3


@pytest.fixture(scope="session")
def bytecode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the servers of these tests keep their compiled modules: without it (a venv
    installed without bytecode, PYTHONDONTWRITEBYTECODE set) each start compiles its
    dependencies again, seconds of CPU for nothing the tests are about."""
    return tmp_path_factory.mktemp("bytecode")


def start_serve(database_url: str, log: Path, bytecode: Path) -> LiveServer:
    """`heroapi serve` on a free port, its settings in its environment (none from the shell's);
    not waited for."""
    port = free_port()
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("HEROAPI_")},
        "DATABASE_URL": database_url,
        "HEROAPI_ACCESS_LOG": "false",
        "PYTHONPYCACHEPREFIX": str(bytecode),
    }
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "heroapi", "serve", "--host", "127.0.0.1"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    return LiveServer(f"http://127.0.0.1:{port}", log, process)


def stop(server: LiveServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@pytest.mark.processes
def test_serve_migrates_once_then_starts_without_a_migration(
    empty_database_url: str, tmp_path: Path, bytecode: Path
) -> None:
    logs = [tmp_path / f"serve-{number}.log" for number in range(PROCESSES)]
    servers = [start_serve(empty_database_url, log, bytecode) for log in logs]
    try:
        for server in servers:
            _wait_until_up(server, server.process)
            ready = httpx.get(f"{server.url}/health/ready", timeout=10).json()
            assert ready["schema"] == head_revision()
    finally:
        for server in servers:
            stop(server)
    told = "".join(server.log_text() for server in servers)
    # The lock in migrate.py: whoever comes second finds the work done.
    assert told.count(f"database migrated base -> {head_revision()}") == 1, told

    # A restart on the database the first start migrated: no `heroapi db upgrade` child (the
    # second Python start-up that made `serve` slow), the database's revision read directly.
    server = start_serve(empty_database_url, tmp_path / "restart.log", bytecode)
    try:
        _wait_until_up(server, server.process)
    finally:
        stop(server)
    log = server.log_text()
    assert "upgrading" not in log, log
    assert "already at" not in log, log


def load_startup_script() -> ModuleType:
    path = ROOT / "scripts" / "startup_time.py"
    spec = importlib.util.spec_from_file_location("startup_time", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.processes
def test_serve_is_ready_within_one_and_a_half_tutorial_starts() -> None:
    """The FastAPI tutorial's app under plain uvicorn against `heroapi serve` on an up-to-date
    database, started alternately, median of five each (the measure of scripts/startup_time.py):
    a ratio, so a loaded machine slows both alike."""
    script = load_startup_script()
    tutorial_python = script.BENCH_HOME / ".venv" / "bin" / "python"
    if not script.BENCH_DIR.is_dir():
        pytest.skip(f"no tutorial app to compare with: {script.BENCH_DIR} is not there")
    if not tutorial_python.exists():
        reason = f"no tutorial app to compare with: run {script.BENCH_DIR}/setup.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true make test does)")
        pytest.skip(reason)
    result = script.measure(5, tutorial_python)
    assert result["ratio"] <= 1.5, result


def test_the_app_turns_the_collector_back_on(tmp_path: Path) -> None:
    """`heroapi serve` builds the app with the garbage collector off; the app's start must turn
    it on again, or the server would never free a reference cycle."""
    gc.disable()
    try:
        settings = make_settings(f"sqlite:///{tmp_path / 'gc.db'}", migrate_on_start=True)
        with running_app(settings):
            assert gc.isenabled()
    finally:
        gc.enable()
