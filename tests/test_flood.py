"""A flood of bogus logins from one address, against a real server (`scripts/login_flood.py`):
the flooder is throttled, memory stays bounded, and a login from elsewhere still succeeds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "login_flood.py"
FLOOD = ["--duration", "4", "--clients", "16", "--failures-per-address", "3", "--json"]


@pytest.mark.processes
def test_a_login_flood_is_throttled_and_bounded() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *FLOOD],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    answers = figures["flood_answers"]
    assert set(answers) <= {"400", "503", "login-address", "hashes-in-flight"}, answers
    assert answers["400"] <= 3  # at most the address's quota of failures is hashed
    # The address's 429s (past its quota, or while its one hash is in flight) are held back a
    # second each: a client gets about one a second, not one per round trip (thousands).
    assert answers.get("login-address", 0) > 0, answers
    refused = answers.get("login-address", 0) + answers.get("hashes-in-flight", 0)
    assert refused <= 16 * (4 + 2), answers
    # At most the hashing workers' Argon2 memory (64 MiB each) comes on top of the idle process.
    assert figures["rss_growth_mb"] < 150, figures
