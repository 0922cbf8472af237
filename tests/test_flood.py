"""A flood of bogus logins from one address, against a real server (`scripts/login_flood.py`):
the flooder is throttled, memory stays bounded, and a login from elsewhere still succeeds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "login_flood.py"


@pytest.mark.processes
def test_a_login_flood_is_throttled_and_bounded() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "4", "--clients", "16", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    statuses = {int(code): count for code, count in figures["flood_statuses"].items()}
    assert statuses.get(429, 0) > statuses.get(400, 0)  # most of the flood is refused unhashed
    assert set(statuses) <= {400, 429, 503}
    # At most the hashing workers' Argon2 memory (64 MiB each) comes on top of the idle process.
    assert figures["rss_growth_mb"] < 150, figures
