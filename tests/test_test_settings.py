"""The suite's own isolation: a test's settings, and the servers it starts, come from the test,
never from the shell that runs the suite."""

from pathlib import Path

import httpx2 as httpx
import pytest

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
