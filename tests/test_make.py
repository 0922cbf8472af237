"""The Makefile as the README's quick start uses it: what `make run` and `make test` would do
(`make -n -B`: every recipe printed, none run, whatever is already installed)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def planned(*arguments: str) -> list[str]:
    """The commands `make` would run, without running any."""
    result = subprocess.run(
        ["make", "-n", "-B", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return result.stdout.splitlines()


def uv_syncs(commands: list[str]) -> list[str]:
    return [command for command in commands if " sync " in command]


def test_make_run_serves_on_the_port_and_host_given() -> None:
    commands = planned("run", "PORT=9210", "HOST=0.0.0.0")
    assert commands[-1].endswith("heroapi serve --host 0.0.0.0 --port 9210"), commands


def test_make_run_serves_on_8000_by_default() -> None:
    assert planned("run")[-1].endswith("heroapi serve --host 127.0.0.1 --port 8000")


def test_make_run_installs_only_what_running_needs() -> None:
    [sync] = uv_syncs(planned("run"))
    assert "--no-dev" in sync
    # Test tools installed by an earlier `make test` stay (uv sync removes what it was not
    # asked for unless told not to).
    assert "--inexact" in sync


@pytest.mark.parametrize("target", ["test", "test-fast", "lint"])
def test_make_test_and_lint_install_the_test_tools(target: str) -> None:
    [sync] = uv_syncs(planned(target))
    assert "--no-dev" not in sync


def test_make_test_fast_runs_the_suite_on_sqlite_without_processes() -> None:
    command = planned("test-fast")[-1]
    assert command.startswith("HEROAPI_TEST_BACKENDS=sqlite .venv/bin/pytest "), command
    assert '-m "not processes"' in command, command
