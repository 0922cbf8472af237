"""Fixtures: every backend-dependent test runs once per database (SQLite, PostgreSQL, MariaDB).

HEROAPI_TEST_BACKENDS (e.g. `sqlite`; see tests/databases.py) runs them on the backends it names
only; the others' tests are deselected. A selected backend whose server cannot be reached is
skipped, and the run says so at its start and end; under CI=true the suite starts such a server,
and fails if it still cannot reach it.
"""

import os
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import delete

from heroapi import migrate
from heroapi.access_log import flush_request_records
from heroapi.config import Settings, parse_database_url
from heroapi.db import Database
from heroapi.main import create_app
from heroapi.models import (
    hero_table,
    items_table,
    rate_limits_table,
    sessions_table,
    users_table,
)
from tests.databases import (
    POOLED,
    TEST_BACKENDS,
    ServerStatus,
    selected_backends,
    server_statuses,
    throwaway_database,
)
from tests.server import LiveServer, live_server

T = TypeVar("T")
_STATUS = pytest.StashKey[dict[str, ServerStatus]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--model-seconds",
        type=float,
        default=None,
        help="tests/test_model.py: generate random examples for this many seconds per backend "
        "(a long local run) instead of CI's derandomized, bounded run",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        selected = selected_backends(os.environ.get("HEROAPI_TEST_BACKENDS", ""))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    in_ci = os.environ.get("CI", "").lower() == "true"
    statuses = server_statuses(selected, start=in_ci)
    config.stash[_STATUS] = statuses
    down = [status for status in statuses.values() if not status.reachable]
    if in_ci and down:
        reasons = "; ".join(f"{status.backend}: {status.reason}" for status in down)
        pytest.exit(f"CI needs every database backend, and these are down: {reasons}", 3)


def pytest_report_header(config: pytest.Config) -> list[str]:
    statuses = config.stash[_STATUS]
    unselected = [backend for backend in TEST_BACKENDS if backend not in statuses]
    return [
        "database backends: "
        + ", ".join(
            f"{status.backend} {'up' if status.reachable else 'DOWN (skipped)'}"
            for status in statuses.values()
        )
        + (
            f"; not selected by HEROAPI_TEST_BACKENDS: {', '.join(unselected)}"
            if unselected
            else ""
        )
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    down = [status for status in config.stash[_STATUS].values() if not status.reachable]
    for status in down:
        terminalreporter.write_line(
            f"SKIPPED BACKEND {status.backend}: server not reachable ({status.reason}); "
            "its tests did not run",
            yellow=True,
            bold=True,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test runs on the backends HEROAPI_TEST_BACKENDS selects, and PostgreSQL through
    PgBouncer runs only the modules that ask (`THROUGH_POOLER = True`): the contract,
    concurrency and migration tests."""
    selected = config.stash[_STATUS]
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        module = getattr(item, "module", None)
        if backend is not None and (
            backend not in selected
            or (backend == POOLED and not getattr(module, "THROUGH_POOLER", False))
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=TEST_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require(request.config, name)
    return name


def selected(config: pytest.Config, backend: str) -> bool:
    """Whether this run is on `backend` (HEROAPI_TEST_BACKENDS names it, or is unset)."""
    return backend in config.stash[_STATUS]


def require(config: pytest.Config, backend: str) -> None:
    """Skip the test if `backend` is not selected or cannot run here (pytest_configure exits
    first under CI)."""
    if not selected(config, backend):
        pytest.skip(f"{backend} not selected by HEROAPI_TEST_BACKENDS")
    status = config.stash[_STATUS][backend]
    if not status.reachable:
        pytest.skip(f"{backend} server not reachable: {status.reason}")


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty (unmigrated) database of this test's own."""
    with throwaway_database(backend, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def server_on_defaults(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`heroapi serve` as a user starts it, on a new database of `backend`: nothing in its
    environment but `DATABASE_URL` (no `HEROAPI_*`, no `.env`), so every setting is its default.
    Shared by a module's tests, each one a client at an address of its own
    (`tests.server.client_address`); a traceback in its log fails the module."""
    directory = tmp_path_factory.mktemp(f"defaults-{backend}")
    with throwaway_database(backend, directory) as url, live_server(url, directory) as server:
        yield server
        log = server.log_text()
    assert "Traceback" not in log, log


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by this backend's tests (each test empties it first)."""
    with throwaway_database(backend, tmp_path_factory.mktemp(backend)) as url:
        migrate.upgrade(parse_database_url(url))
        yield url


class ArgumentSettings(Settings):
    """Settings from the arguments given and the defaults alone: no environment variable (a
    shell's `HEROAPI_ACCESS_LOG=false` would otherwise change every test's app), no `.env`."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test, from its arguments only (see `ArgumentSettings`). Throttled answers
    are not held back unless a test asks (`throttle_hold`)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "migrate_on_start": False,
        "throttle_hold": 0,
    }
    return ArgumentSettings(**(values | overrides))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


async def _empty_tables(database: Database) -> None:
    async with database.transaction() as connection:
        for table in (
            sessions_table,
            items_table,
            users_table,
            hero_table,
            rate_limits_table,
        ):
            await connection.execute(delete(table), {})


# The apps `running_app` has started and not yet stopped.
_RUNNING: list[TestClient] = []
# The apps `running_app` built last, with their settings. Building one (its routes and their
# schemas) costs ~50 ms of CPU, a third of a typical test's, and an app holds nothing from one
# run to the next (its lifespan makes the database, hashing and throttle of each run): tests
# with equal settings share one.
_BUILT: list[tuple[Settings, FastAPI]] = []
_BUILT_KEPT = 8


def _app_for(settings: Settings) -> FastAPI:
    """The app built for settings equal to `settings` if one is kept and not running, else a
    new one."""
    running = [client.app for client in _RUNNING]
    for index, (built_for, app) in enumerate(_BUILT):
        if built_for == settings and not any(app is other for other in running):
            _BUILT.append(_BUILT.pop(index))
            return app
    app = create_app(settings)
    _BUILT.append((settings, app))
    del _BUILT[:-_BUILT_KEPT]
    return app


@contextmanager
def running_app(settings: Settings) -> Iterator[TestClient]:
    """The app for `settings` on its emptied database, through Starlette's test client."""
    with TestClient(_app_for(settings)) as test_client:
        app_database(test_client, _empty_tables)
        _RUNNING.append(test_client)
        try:
            yield test_client
        finally:
            _RUNNING.remove(test_client)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """The access lines a running app still batches are written before the test's output is
    no longer captured: the app's thread would write them a moment later, into pytest's own
    report between this test and its teardown. (`flush_request_records` writes every app's
    batch, as before a scrape.)"""
    yield
    if _RUNNING:
        running = _RUNNING[-1]
        assert running.portal is not None
        running.portal.call(flush_request_records)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app (auth mode `open`, the default) on this backend's database, emptied."""
    with running_app(settings) as test_client:
        yield test_client


@pytest.fixture
def auth_client(database_url: str) -> Iterator[TestClient]:
    """The app with `HEROAPI_AUTH_MODE=required` on this backend's database, emptied."""
    with running_app(make_settings(database_url, auth_mode="required")) as test_client:
        yield test_client


@pytest.fixture
def run_in_app(client: TestClient) -> Callable[[Callable[[Database], Awaitable[T]]], T]:
    """Run `function(database)` on the app's own event loop and database connections."""

    def run(function: Callable[[Database], Awaitable[T]]) -> T:
        return app_database(client, function)

    return run


def app_database(client: TestClient, function: Callable[[Database], Awaitable[T]]) -> T:
    """`function(database)` on the event loop and connections of the app `client` runs."""
    assert client.portal is not None, "the client's app is not running (use it in a `with`)"
    database: Database = client.app.state.database  # type: ignore[attr-defined]
    return client.portal.call(function, database)
