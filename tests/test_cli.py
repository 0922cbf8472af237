"""The `heroapi` command as a user meets it: help, version, and one-line errors."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from heroapi import __version__
from tests.conftest import make_settings, running_app
from tests.support import PASSWORD, create_user

pytestmark = pytest.mark.processes  # every test here starts heroapi or its command

HEROAPI = [sys.executable, "-m", "heroapi"]
ROOT = Path(__file__).resolve().parent.parent


def heroapi(*arguments: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """`heroapi ARGUMENTS` in `cwd`, with the settings in `environment` and none of the shell's."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HEROAPI_") and name != "DATABASE_URL"
    }
    return subprocess.run(
        [*HEROAPI, *arguments],
        env={**inherited, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("heroapi: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version(tmp_path: Path) -> None:
    result = heroapi("version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["db", "downgrade"],
        ["db", "current"],
        ["db", "check"],
        ["users", "create-superuser"],
        ["users", "unlock"],
        ["version"],
    ],
)
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    result = heroapi(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = heroapi(
            "serve", "--port", str(port), cwd=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/x.db"
        )
    assert_one_line_error(result, f"127.0.0.1:{port}", "in use")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://postgres:hunter2secret@127.0.0.1:{port}/nowhere"
    result = heroapi("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert_one_line_error(result, "migration failed", f"127.0.0.1:{port}")
    assert "hunter2secret" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DATABASE_URL", "oracle://scott:tiger@db/x", "DATABASE_URL: unsupported database"),
        ("HEROAPI_DATABASE_POOL_SIZE", "lots", "HEROAPI_DATABASE_POOL_SIZE"),
        ("HEROAPI_AUTH_MODE", "maybe", "HEROAPI_AUTH_MODE"),
        ("HEROAPI_SECRET_KEY", "tooshort-secret", "at least 32 characters"),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(
    tmp_path: Path, variable: str, value: str, fragment: str
) -> None:
    result = heroapi("db", "current", cwd=tmp_path, **{variable: value})
    assert_one_line_error(result, "bad setting", fragment)
    assert "HEROAPI_HEROAPI_" not in result.stderr
    assert "tiger" not in result.stderr
    assert "tooshort-secret" not in result.stderr


def test_serve_without_migrations_checks_the_database_first(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = heroapi(
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        DATABASE_URL=f"mysql://root:hunter2secret@127.0.0.1:{port}/nowhere",
        HEROAPI_MIGRATE_ON_START="false",
    )
    assert_one_line_error(result, "cannot reach", f"127.0.0.1:{port}")
    assert "hunter2secret" not in result.stderr


def test_users_unlock_lets_a_locked_account_log_in_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """An account locked by failed logins, unlocked from the command line while the server
    runs: the server lets its owner in at once, though it had remembered the account as
    locked."""
    with running_app(make_settings(database_url)) as client:
        create_user(client, "a@example.com")

        def log_in(password: str) -> int:
            form = {"username": "a@example.com", "password": password}
            return client.post("/login/access-token", data=form).status_code

        assert [log_in("wrong password") for _ in range(10)] == [400] * 10
        assert log_in("wrong password") == 429
        assert log_in(PASSWORD) == 429  # locked

        result = heroapi(
            "users", "unlock", "--email", "A@example.com", cwd=tmp_path, DATABASE_URL=database_url
        )
        assert result.returncode == 0, result.stderr
        assert (
            result.stdout == "unlocked A@example.com: 11 failed logins cleared (the limit is 10)\n"
        )
        assert log_in(PASSWORD) == 200

        again = heroapi(
            "users", "unlock", "--email", "a@example.com", cwd=tmp_path, DATABASE_URL=database_url
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout == "a@example.com was not locked; its 0 failed logins were cleared\n"


def test_users_unlock_refuses_an_unknown_or_invalid_address(
    database_url: str, tmp_path: Path
) -> None:
    with running_app(make_settings(database_url)):
        unknown = heroapi(
            "users",
            "unlock",
            "--email",
            "nobody@example.com",
            cwd=tmp_path,
            DATABASE_URL=database_url,
        )
        assert_one_line_error(unknown, "no account has the email nobody@example.com")
        invalid = heroapi(
            "users", "unlock", "--email", "not an address", cwd=tmp_path, DATABASE_URL=database_url
        )
        assert_one_line_error(invalid, "not an email address: 'not an address'")


FIRST_SUPERUSER = {"HEROAPI_FIRST_SUPERUSER_EMAIL": "admin@example.com"}


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (
            {**FIRST_SUPERUSER, "HEROAPI_FIRST_SUPERUSER_PASSWORD": "tiny-pw"},
            "HEROAPI_FIRST_SUPERUSER_PASSWORD: must be at least 8 characters long",
        ),
        (
            {
                "HEROAPI_FIRST_SUPERUSER_EMAIL": "admin",
                "HEROAPI_FIRST_SUPERUSER_PASSWORD": "x" * 12,
            },
            "HEROAPI_FIRST_SUPERUSER_EMAIL: not a valid email address",
        ),
        (
            {**FIRST_SUPERUSER, "HEROAPI_FIRST_SUPERUSER_PASSWORD": "x" * 1000},
            "HEROAPI_FIRST_SUPERUSER_PASSWORD: String should have at most",
        ),
        # The .env.example line uncommented as it stands: an empty password is no password.
        (
            {**FIRST_SUPERUSER, "HEROAPI_FIRST_SUPERUSER_PASSWORD": ""},
            "HEROAPI_FIRST_SUPERUSER_PASSWORD: not set, but HEROAPI_FIRST_SUPERUSER_EMAIL is",
        ),
        (
            {"HEROAPI_FIRST_SUPERUSER_PASSWORD": "x" * 12},
            "HEROAPI_FIRST_SUPERUSER_EMAIL: not set, but HEROAPI_FIRST_SUPERUSER_PASSWORD is",
        ),
        (
            {"HEROAPI_CORS_ORIGINS": "https://app.example/login"},
            "HEROAPI_CORS_ORIGINS: 'https://app.example/login' is not an origin",
        ),
        (
            {"HEROAPI_DATABASE_REPLICA_URLS": "postgresql://replica/heroapi"},
            "HEROAPI_DATABASE_REPLICA_URLS: needs a PostgreSQL DATABASE_URL",
        ),
        (
            {"HEROAPI_MIGRATION_DATABASE_URL": "postgresql://primary/heroapi"},
            "HEROAPI_MIGRATION_DATABASE_URL: must name the same kind of database",
        ),
    ],
)
def test_serve_refuses_a_bad_setting_in_one_line_before_serving(
    tmp_path: Path, settings: dict[str, str], fragment: str
) -> None:
    result = heroapi(
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'heroapi.db'}",
        **settings,
    )
    assert_one_line_error(result, f"heroapi: bad setting: {fragment}")
    assert "serving on" not in result.stderr
    assert "HEROAPI_:" not in result.stderr
    assert "tiny-pw" not in result.stderr  # no password is printed
    assert not (tmp_path / "heroapi.db").exists()


def test_the_empty_lines_of_env_example_uncommented_are_the_defaults(tmp_path: Path) -> None:
    """`NAME=` is unset: .env.example's lines without a value, uncommented as they stand."""
    empty = re.findall(r"^#(HEROAPI_\w+=)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert "HEROAPI_FIRST_SUPERUSER_PASSWORD=" in empty
    assert "HEROAPI_SECRET_KEY=" in empty
    (tmp_path / ".env").write_text("".join(f"{line}\n" for line in empty))
    result = heroapi("db", "upgrade", cwd=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command", [["db", "current"], ["db", "check"], ["db", "downgrade", "base"]]
)
def test_reading_a_missing_sqlite_file_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    result = heroapi(*command, cwd=tmp_path, DATABASE_URL="sqlite:///heroapu.db")
    assert_one_line_error(result, "no SQLite database at heroapu.db", "heroapi db upgrade")
    assert list(tmp_path.iterdir()) == []


def test_serve_without_migrations_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    result = heroapi(
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        DATABASE_URL="sqlite:///heroapu.db",
        HEROAPI_MIGRATE_ON_START="false",
    )
    assert_one_line_error(result, "no SQLite database at heroapu.db")
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_url_with_two_slashes_is_explained(tmp_path: Path) -> None:
    result = heroapi("db", "current", cwd=tmp_path, DATABASE_URL="sqlite://heroapi.db")
    assert_one_line_error(result, "DATABASE_URL", "host", "sqlite:///heroapi.db")
    assert "in-memory" not in result.stderr
