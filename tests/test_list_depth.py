"""A page by cursor costs the same at any depth; a page by offset costs the rows it skips.

On each backend: 100,000 heroes, made by the database itself (one INSERT ... SELECT), then the
first page, a cursor page at row 99,800 and an offset page at row 99,800, requested over HTTP,
interleaved, median of several, each as the server timed it (its access log). The offset pages
are taken in `order=name`, the cursor pages in the same order; on default settings they are
refused (HEROAPI_MAX_SORTED_OFFSET), so their cost is measured with that bound lifted. Each
round's offset page starts a row before the last one's: a page anchor (crud/listing/anchors.py)
would make a page read again, or one past it, cheap, and only a page after an anchor uses
one. The bounds leave
room for a loaded 2-core machine: the cursor page at depth within 3x the first page, the offset
page over 2x the cursor page (measured: ~1.1x; and 4x on SQLite, 18x on PostgreSQL, 90x on
MariaDB).
"""

import json
import statistics
import time
from typing import Final

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import make_settings, running_app
from tests.rows import add_many_heroes

ROWS: Final = 100_000
DEPTH: Final = ROWS - 200
LIMIT: Final = 100
ROUNDS: Final = 7


def _next_link(response: Response) -> str:
    link = response.headers["link"]
    assert link.split(", <")[0].endswith('rel="next"'), link
    return link[1 : link.index(">")]


def _deep_cursor_page(client: TestClient, first: str) -> str:
    """The cursor page at row DEPTH, found as a client finds it: by following `next` links."""
    path = first
    for _ in range(DEPTH // LIMIT):
        path = _next_link(client.get(path))
    return path


def _server_times(capsys: pytest.CaptureFixture[str], count: int) -> list[float]:
    """The server's time for each of the last `count` requests, in order, from their access log
    lines (`duration_ms`; written in batches within 50 ms): the test client's own work, a few
    milliseconds a request, would blur the comparison."""
    lines: list[str] = []
    deadline = time.monotonic() + 5
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        lines += [
            line for line in capsys.readouterr().err.splitlines() if '"heroapi.access"' in line
        ]
    assert len(lines) == count, lines
    return [float(json.loads(line)["duration_ms"]) / 1000 for line in lines]


def test_a_deep_cursor_page_costs_what_the_first_page_costs(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_app(make_settings(database_url, max_sorted_offset=None)) as client:
        _compare_depths(client, capsys)


def _compare_depths(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    add_many_heroes(client, ROWS)
    order = "name"
    first = f"/heroes/?order={order}&limit={LIMIT}"
    deep_cursor = _deep_cursor_page(client, first)
    deep_offset = f"/heroes/?order={order}&offset={DEPTH}&limit={LIMIT}"
    # The cursor page really is the page at DEPTH: the same rows as the offset page.
    assert client.get(deep_cursor).json() == client.get(deep_offset).json()
    time.sleep(0.2)  # the access log's last batch
    capsys.readouterr()  # the lines of the pages walked to get there
    for round_number in range(ROUNDS):
        offset = DEPTH - 1 - round_number  # before every page read so far: no anchor serves it
        paths = [first, deep_cursor, f"/heroes/?order={order}&offset={offset}&limit={LIMIT}"]
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, response.text
            assert len(response.json()) == LIMIT
    times = _server_times(capsys, ROUNDS * len(paths))
    first_time, cursor_time, offset_time = (
        statistics.median(times[index::3]) for index in range(3)
    )
    assert cursor_time < 3 * first_time, (first_time, cursor_time)
    assert offset_time > 2 * cursor_time, (cursor_time, offset_time)


def test_counts_of_a_large_list(client: TestClient) -> None:
    """`exact` counts matching rows up to HEROAPI_COUNT_LIMIT (10,000), then says "at least";
    `estimated` costs no scan and is near: the planner's figure on PostgreSQL and MariaDB
    (after ANALYZE), on SQLite an exact count of the first 1,000 matching rows spread over the
    ids past them."""
    add_many_heroes(client, ROWS)

    def counted(mode: str, **filters: str) -> int:
        params = {"limit": "1", **filters}
        response = client.get("/heroes/", params=params, headers={"Prefer": f"count={mode}"})
        assert response.status_code == 200, response.text
        assert response.headers["preference-applied"] == f"count={mode}"
        return int(response.headers["x-total-count"])

    def at_least(**filters: str) -> int:
        params = {"limit": "1", **filters}
        response = client.get("/heroes/", params=params, headers={"Prefer": "count=exact"})
        assert response.status_code == 200, response.text
        assert "x-total-count" not in response.headers
        return int(response.headers["x-total-count-at-least"])

    # Ages are n % 100: half of them are 50 or more.
    assert at_least() == at_least(age_gte="50") == 10_001
    heroes = [(f"Hero {n * 7919 % ROWS:06d}", n % 100) for n in range(1, ROWS + 1)]
    expected = sum(name.startswith("Hero 00") and age >= 50 for name, age in heroes)
    assert counted("exact", age_gte="50", name_prefix="Hero 00") == expected
    assert 0.8 * ROWS <= counted("estimated") <= 1.2 * ROWS
    assert 0.3 * ROWS <= counted("estimated", age_gte="50") <= 0.7 * ROWS
    # A filter that matches fewer rows than the bound is counted exactly everywhere but on the
    # planners, which may be off by a few: at most one percent of the table.
    few = counted("estimated", age="7", name_prefix="Hero 00")
    assert abs(few - counted("exact", age="7", name_prefix="Hero 00")) <= ROWS // 100
