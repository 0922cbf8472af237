"""What a server writes on stderr, read as a log collector reads it: every line one JSON object
in heroapi's format (uvicorn's own lines and the start-up's included), with one time format."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.server import LiveServer, _wait_until_up, free_port

pytestmark = pytest.mark.processes

# The access log's: UTC, milliseconds.
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def serve_and_stop(command: list[str], directory: Path) -> list[str]:
    """Run a server with only a SQLite URL for settings, ask it two things, stop it (SIGTERM:
    a graceful shutdown), and return its stderr's lines."""
    port = free_port()
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("HEROAPI_")},
        "DATABASE_URL": f"sqlite:///{directory / 'heroapi.db'}",
    }
    log = directory / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=directory,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", log, process)
    try:
        _wait_until_up(server, process)
        assert httpx.get(f"{server.url}/heroes/", timeout=10).status_code == 200
        assert httpx.get(f"{server.url}/nowhere", timeout=10).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return server.log_text().splitlines()


def parsed(lines: list[str]) -> list[dict[str, object]]:
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n" + "\n".join(lines))
        assert isinstance(entry, dict), line
        assert TIME.fullmatch(str(entry["time"])), line
        assert entry["logger"], line
        entries.append(entry)
    return entries


def messages(entries: list[dict[str, object]], logger: str) -> str:
    return "\n".join(str(entry.get("message")) for entry in entries if entry["logger"] == logger)


def test_heroapi_serve_writes_only_json_lines(tmp_path: Path) -> None:
    lines = serve_and_stop([sys.executable, "-m", "heroapi", "serve"], tmp_path)
    entries = parsed(lines)
    uvicorn = messages(entries, "uvicorn.error")
    for said in ("Started server process", "Application startup complete", "Shutting down"):
        assert said in uvicorn, lines
    ours = messages(entries, "heroapi")
    assert "database migrated base -> " in ours, lines  # the migration of a new database
    assert "serving on http://127.0.0.1:" in ours, lines
    answered = {
        entry["path"]: entry["status"] for entry in entries if entry["logger"] == "heroapi.access"
    }
    assert answered["/heroes/"] == 200
    assert answered["/nowhere"] == 404


def test_plain_uvicorn_writes_only_json_lines(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "uvicorn", "heroapi.main:app", "--no-access-log"]
    entries = parsed(serve_and_stop(command, tmp_path))
    assert "Application startup complete" in messages(entries, "uvicorn.error")
    assert any(entry["logger"] == "heroapi.access" for entry in entries)
    # --no-access-log is kept: one access line per request, heroapi's, not uvicorn's as well.
    assert not [entry for entry in entries if entry["logger"] == "uvicorn.access"]
