"""What operators and everyday users meet: HEAD, request ids, access log, CORS, gzip, health,
metrics and settings."""

import asyncio
import gc
import gzip
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from heroapi import migrate
from heroapi.config import Settings
from heroapi.logs import JSONFormatter, RequestIdFilter
from heroapi.main import GC_YOUNG_THRESHOLD, create_app
from heroapi.revisions import head_revision
from tests.conftest import make_settings, running_app
from tests.databases import drop_postgres
from tests.support import HERO, PASSWORD, create_user, login


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on a SQLite file of this test's own (for what does not depend on the backend)."""
    with running_app(make_settings(f"sqlite:///{tmp_path / 'ops.db'}", migrate_on_start=True)) as c:
        yield c


def test_head_works_on_every_get_route(sqlite_client: TestClient) -> None:
    client = sqlite_client
    hero = client.post("/heroes/", json=HERO).json()
    user = create_user(client, "deadpool@example.com")
    item = client.post(f"/users/{user['id']}/items/", json={"title": "Katana"}).json()
    ids = {"hero_id": hero["id"], "user_id": user["id"], "item_id": item["id"]}
    headers = login(client, "deadpool@example.com")
    # Every GET in the OpenAPI, and the routes kept out of it.
    templates = [
        path for path, item in client.get("/openapi.json").json()["paths"].items() if "get" in item
    ]
    templates += ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/metrics"]
    paths = {
        re.sub(r"\{(\w+)\}", lambda match: str(ids[match.group(1)]), template)
        for template in templates
    }
    assert {"/heroes/", f"/heroes/{hero['id']}", "/users/me", "/health/ready", "/docs"} <= paths
    for path in sorted(paths):
        got = client.get(path, headers=headers)
        head = client.head(path, headers=headers)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path


def test_request_id_is_generated_or_kept(sqlite_client: TestClient) -> None:
    generated = sqlite_client.get("/heroes/").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert sqlite_client.get("/heroes/").headers["x-request-id"] != generated
    kept = sqlite_client.get("/heroes/", headers={"X-Request-ID": "trace-42.abc"})
    assert kept.headers["x-request-id"] == "trace-42.abc"
    # Not a plain token (log injection, megabytes): replaced by a fresh one.
    replaced = sqlite_client.get("/heroes/", headers={"X-Request-ID": 'a b"c' + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])


def read_lines(capsys: pytest.CaptureFixture[str], count: int) -> list[str]:
    """The lines written to stderr, waiting for the access log's batch (written within 50 ms)."""
    lines: list[str] = []
    deadline = time.monotonic() + 2
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        lines += capsys.readouterr().err.splitlines()
    return lines


def test_access_lines_are_out_within_a_fraction_of_a_second_and_at_shutdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'ops.db'}", migrate_on_start=True)
    with TestClient(create_app(settings)) as client:
        capsys.readouterr()
        client.get("/heroes/")
        started = time.monotonic()
        assert len(read_lines(capsys, 1)) == 1
        # Batched for 50 ms; a loaded machine may add some hundreds.
        assert time.monotonic() - started < 0.9
        client.get("/heroes/")  # still pending when the app shuts down...
    # ...and written then.
    assert [json.loads(line)["path"] for line in capsys.readouterr().err.splitlines()] == [
        "/heroes/"
    ]


def test_one_access_log_line_per_request_without_secrets(
    sqlite_client: TestClient, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    client = sqlite_client
    create_user(client, "deadpool@example.com")
    read_lines(capsys, 1)  # its own access line
    with caplog.at_level(logging.INFO, logger="heroapi"):
        token = login(client, "deadpool@example.com")
        hero = client.post("/heroes/", json=HERO, headers=token).json()
        client.get(f"/heroes/{hero['id']}", headers={"X-Request-ID": "req-1"})
        client.post("/users/", json={"email": "x@example.com", "password": "short"})
    written = read_lines(capsys, 4)
    entries = [json.loads(line) for line in written]
    assert [entry["logger"] for entry in entries] == ["heroapi.access"] * 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entries[0]["time"])
    assert entries[2] | {"duration_ms": 0, "client": "-", "time": "-"} == {
        "time": "-",
        "logger": "heroapi.access",
        "method": "GET",
        "route": "/heroes/{hero_id}",
        "path": f"/heroes/{hero['id']}",
        "status": 200,
        "duration_ms": 0,
        "request_id": "req-1",
        "client": "-",
    }
    assert entries[3]["status"] == 422
    formatter = JSONFormatter()
    text = "\n".join([*written, *(formatter.format(record) for record in caplog.records)])
    for secret in (PASSWORD, "Dive Wilson", token["Authorization"].split()[1], "short"):
        assert secret not in text


def test_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("heroapi", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    RequestIdFilter().filter(record)
    entry = json.loads(JSONFormatter().format(record))
    assert entry["message"] == "hello x"
    assert entry["request_id"] == "-"
    assert entry["level"] == "warning"


def test_cors_is_off_by_default_and_a_setting(tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
    }
    url = f"sqlite:///{tmp_path / 'cors.db'}"
    with running_app(make_settings(url, migrate_on_start=True)) as client:
        response = client.options("/heroes/", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    settings = make_settings(url, cors_origins="https://app.example, https://admin.example")
    assert settings.cors_origins == ["https://app.example", "https://admin.example"]
    with running_app(settings) as client:
        response = client.options("/heroes/", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        other = client.options("/heroes/", headers=preflight | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("written", "origin"),
    [
        ("http://localhost:3000/", "http://localhost:3000"),
        ("HTTPS://App.Example:443", "https://app.example"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
    ],
)
def test_cors_origins_are_read_as_browsers_send_them(
    tmp_path: Path, written: str, origin: str
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'cors.db'}", cors_origins=written)
    assert settings.cors_origins == [origin]


# What a browser script may read of a response only if the server says so (not CORS-safelisted).
DOCUMENTED_HEADERS = {
    "link",
    "x-total-count",
    "preference-applied",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "www-authenticate",
    "x-request-id",
}


def test_cors_exposes_every_header_the_api_documents(tmp_path: Path) -> None:
    origin = "http://localhost:3000"
    settings = make_settings(
        f"sqlite:///{tmp_path / 'cors.db'}", migrate_on_start=True, cors_origins=f"{origin}/"
    )
    with running_app(settings) as client:
        for _ in range(2):
            client.post("/heroes/", json=HERO)
        response = client.get(
            "/heroes/?limit=1", headers={"Origin": origin, "Prefer": "count=exact"}
        )
        assert response.headers["access-control-allow-origin"] == origin
        exposed = set(response.headers["access-control-expose-headers"].lower().split(", "))
        assert exposed >= DOCUMENTED_HEADERS
        # Every response header the OpenAPI document declares, too.
        declared = {
            name.lower()
            for operations in client.get("/openapi.json").json()["paths"].values()
            for operation in operations.values()
            for answer in operation["responses"].values()
            for name in answer.get("headers", {})
        }
        assert "x-total-count-at-least" in declared
        assert exposed >= declared - {"vary"}, declared - exposed
        # And nothing this answer carries is hidden from the page that asked for it.
        safelisted = {"content-type", "content-length", "last-modified", "vary"}
        carried = {name for name in response.headers if not name.startswith("access-control-")}
        carried -= safelisted
        assert carried <= exposed, carried - exposed


def test_large_responses_are_gzipped_for_clients_that_accept_it(sqlite_client: TestClient) -> None:
    for number in range(40):
        sqlite_client.post("/heroes/", json=HERO | {"name": f"Hero number {number}"})
    with sqlite_client.stream("GET", "/heroes/", headers={"Accept-Encoding": "gzip"}) as raw:
        assert raw.headers["content-encoding"] == "gzip"
        sent = b"".join(raw.iter_raw())  # the body as it went over the wire
    plain = sqlite_client.get("/heroes/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.json()) == 40
    # The same answer, smaller.
    assert gzip.decompress(sent) == plain.content
    assert len(sent) < len(plain.content) / 2
    small = sqlite_client.get("/heroes/?limit=1", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "schema": head_revision()}


def test_not_ready_while_the_schema_is_behind(empty_database_url: str) -> None:
    settings = make_settings(empty_database_url)
    migrate.upgrade(settings.database, "0001")
    with TestClient(_app(settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "0001" in ready.json()["reason"]
        assert client.get("/health/live").status_code == 200
    migrate.upgrade(settings.database)
    with TestClient(_app(settings)) as client:
        assert client.get("/health/ready").status_code == 200


def _app(settings: Settings) -> Any:
    return create_app(settings)


def test_metrics(client: TestClient) -> None:
    hero = client.post("/heroes/", json=HERO).json()
    client.get(f"/heroes/{hero['id']}")
    client.get("/heroes/999999")
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(
        r'heroapi_requests_total\{method="GET",route="/heroes/\{hero_id\}",status="200"\} [1-9]',
        text,
    )
    assert 'route="/heroes/{hero_id}",status="404"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert (
        'heroapi_request_duration_seconds_bucket{le="0.005",method="POST",route="/heroes/"}' in text
    )
    assert "heroapi_database_connections" in text


def requests_counted(text: str, method: str, route: str, status: int) -> float:
    labels = f'method="{method}",route="{route}",status="{status}"'
    match = re.search(rf"^heroapi_requests_total\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_every_request_and_no_invented_method(client: TestClient) -> None:
    before = client.get("/metrics").text
    for _ in range(7):  # answered within one batch of records
        client.get("/heroes/999999")
    for number in range(5):
        client.request(f"BREW{number}", "/heroes/")
    after = client.get("/metrics").text
    counts = [
        requests_counted(text, method, route, status)
        for method, route, status in [
            ("GET", "/heroes/{hero_id}", 404),
            ("_OTHER", "/heroes/", 405),
        ]
        for text in (after, before)
    ]
    assert (counts[0] - counts[1], counts[2] - counts[3]) == (7, 5)
    # Whatever a client sends as its method, the metrics keep one series for it.
    assert "BREW" not in after


def test_access_lines_are_json_whatever_the_path(
    sqlite_client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    path = '/heroes/"quoted"\\back%0Aslash-é-%09'
    sqlite_client.get(path, headers={"X-Request-ID": "abc:1.2-3_4"})
    sqlite_client.request("BREW", "/heroes/")
    first, second = (json.loads(line) for line in read_lines(capsys, 2))
    assert first["path"] == '/heroes/"quoted"\\back\nslash-é-\t'
    assert (first["status"], first["route"], first["request_id"]) == (
        422,
        "/heroes/{hero_id}",
        "abc:1.2-3_4",
    )
    assert first["duration_ms"] > 0
    assert (second["method"], second["status"]) == ("BREW", 405)


def test_env_example_lists_every_setting() -> None:
    example = Path(__file__).parent.parent / ".env.example"
    names = {
        match.group(1)
        for line in example.read_text(encoding="utf-8").splitlines()
        if (match := re.match(r"#?([A-Z][A-Z0-9_]*)=", line))
    }
    expected = {
        "DATABASE_URL" if name == "database_url" else f"HEROAPI_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if not field.deprecated  # a removed setting, refused when set
    }
    assert names == expected
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in expected)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_not_ready_when_the_database_is_gone(empty_database_url: str) -> None:
    """The database disappears under a running server: readiness says so, liveness stays up."""
    settings = make_settings(empty_database_url, migrate_on_start=True)
    with TestClient(_app(settings)) as client:
        assert client.get("/health/ready").status_code == 200
        name = settings.database.url.database
        asyncio.run(drop_postgres(str(name)))
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"]
        assert "database" in ready.json()["reason"]
        assert client.get("/health/live").status_code == 200
        # A request that needs the database gets a 503 too, not a 500 or a hang.
        down = client.get("/heroes/")
        assert down.status_code == 503
        assert down.headers["retry-after"]


class RecordingTracer(trace.NoOpTracer):
    """A tracer that remembers the names of the spans it was asked to start."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append(name)
        return super().start_span(name, *args, **kwargs)


class RecordingTracerProvider(trace.TracerProvider):
    """What an OpenTelemetry SDK set up for the process would be, as FastAPI sees it."""

    def __init__(self) -> None:
        self.tracer = RecordingTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return self.tracer


@pytest.mark.parametrize("enabled", [False, True])
def test_opentelemetry_spans_are_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    settings = make_settings(
        f"sqlite:///{tmp_path / 'otel.db'}", migrate_on_start=True, opentelemetry=enabled
    )
    with running_app(settings) as client:
        assert client.get("/heroes/").status_code == 200
    # Off (the default), FastAPI does not even look for a tracer on a request.
    if enabled:
        assert provider.tracer.spans[0] == "GET"  # the request's span, then its operation's
    else:
        assert provider.tracer.spans == []


def test_a_serving_app_collects_young_objects_less_often(settings: Settings) -> None:
    """Requests in flight swing the allocation count: while serving, young collections wait
    for GC_YOUNG_THRESHOLD allocations (docs/performance.md); afterwards, the process's own."""
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        with running_app(settings) as client:
            assert client.get("/health/live").status_code == 200
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
            assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's way
        assert gc.get_threshold() == (700, *before[1:])
    finally:
        gc.set_threshold(*before)
