"""The suite's own isolation: a test's settings, and the servers it starts, come from the test,
never from the shell that runs the suite."""

import contextlib
import sqlite3
from pathlib import Path

import httpx2 as httpx
import pytest

from heroapi import migrate
from heroapi.config import SQLITE_PAGE_SIZE, parse_database_url
from tests.conftest import make_settings
from tests.server import live_server


def test_a_shell_setting_does_not_reach_a_tests_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEROAPI_ACCESS_LOG", "false")
    monkeypatch.setenv("HEROAPI_PASSWORD_MIN_LENGTH", "40")
    monkeypatch.setenv("DATABASE_URL", "mysql://root@db.example/elsewhere")
    (tmp_path / ".env").write_text("HEROAPI_AUTH_MODE=required\n")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'heroes.db'}"
    settings = make_settings(url, log_level="DEBUG")
    assert (settings.access_log, settings.password_min_length) == (True, 8)
    assert (settings.database_url, settings.auth_mode) == (url, "open")
    assert settings.log_level == "DEBUG"  # what the test gives still counts


@pytest.mark.processes
def test_a_shell_setting_does_not_reach_a_tests_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEROAPI_AUTH_MODE", "required")
    monkeypatch.setenv("HEROAPI_MAX_BODY_SIZE", "1024")
    with live_server(f"sqlite:///{tmp_path / 'heroes.db'}", tmp_path) as server:
        # 2 kB: an unknown field is ignored, as in the tutorial
        hero = {"name": "Deadpond", "secret_name": "Dive Wilson", "notes": "." * 2000}
        created = httpx.post(f"{server.url}/heroes/", json=hero)
    # On defaults: anyone may create a hero (auth mode `open`), bodies up to 1 MiB.
    assert created.status_code == 200, created.text
    assert created.json() == {"name": "Deadpond", "age": None, "id": 1}


def test_a_shell_setting_does_not_reach_a_tests_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migrations a fixture runs in-process take what they need from their arguments (the
    SQLite page size of a new file), not from the shell's settings."""
    monkeypatch.setenv("HEROAPI_SQLITE_PAGE_SIZE", "8192")
    default, given = tmp_path / "default.db", tmp_path / "given.db"
    migrate.upgrade(parse_database_url(f"sqlite:///{default}"))
    migrate.upgrade(parse_database_url(f"sqlite:///{given}"), sqlite_page_size=4096)
    assert [page_size(path) for path in (default, given)] == [SQLITE_PAGE_SIZE, 4096]


def page_size(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        size: int = connection.execute("PRAGMA page_size").fetchone()[0]
        return size
