"""Property-based API testing: schemathesis against heroapi's own /openapi.json, every phase
(examples, coverage, fuzzing, stateful), a fixed seed and a bounded budget, on every backend."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.server import live_server

pytestmark = pytest.mark.processes  # every test here starts heroapi or its command

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


def test_schemathesis_finds_nothing(empty_database_url: str, tmp_path: Path) -> None:
    with live_server(empty_database_url, tmp_path) as server:
        account = {"email": "schemathesis@example.com", "password": "generated-cases"}
        assert httpx.post(f"{server.url}/users/", json=account).status_code == 200
        login = {"username": account["email"], "password": account["password"]}
        token = httpx.post(f"{server.url}/login/access-token", data=login).json()["access_token"]
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{server.url}/openapi.json",
                "--seed=42",
                "--max-examples=15",
                "--max-time=45",
                f"--checks={CHECKS}",
                "--phases=examples,coverage,fuzzing,stateful",
                f"--header=Authorization: Bearer {token}",
                "--request-timeout=30",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        log = server.log_text()
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated is not None, summary
    print(f"schemathesis: {generated.group(1)} cases generated, 0 failures")
    assert int(generated.group(1)) > 500
    assert "Traceback" not in log
