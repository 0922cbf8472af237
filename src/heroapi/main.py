"""The application: `create_app()` builds it from its settings (every resource's routes, the error
handlers, the docs and the middleware); `lifespan` opens and closes what it serves with."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from heroapi import __version__, crud
from heroapi.accounts import create_superuser
from heroapi.config import Settings, get_settings
from heroapi.db import Database, create_database
from heroapi.docs import install_docs
from heroapi.errors import install_error_handlers
from heroapi.logs import configure_logging
from heroapi.middleware import install_middleware
from heroapi.openapi import document_statuses
from heroapi.revisions import schema_at_head
from heroapi.routes import health, heroes, items, login, users
from heroapi.routes.routing import add_routes
from heroapi.routes.throttling import install_throttle_errors
from heroapi.security import PasswordHasher
from heroapi.throttle import Throttle

logger = logging.getLogger("heroapi")

# heroapi's own metrics and access log (metrics.py, access_log.py) need no OpenTelemetry.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# Allocations between young collections while serving (CPython's default: 700); see
# `_tune_the_collector`.
GC_YOUNG_THRESHOLD = 7000


async def _open_database(settings: Settings) -> Database:
    """The app's database, connected, its schema brought to the latest migration first if
    HEROAPI_MIGRATE_ON_START asks for it and it is behind."""
    database = create_database(settings)
    await database.connect()
    if settings.migrate_on_start and not await schema_at_head(database):
        from heroapi import migrate  # Alembic: loaded only when there is something to do

        # Alembic is synchronous; under the lock, only one process migrates at a time.
        migrated = await asyncio.to_thread(
            migrate.upgrade,
            settings.migration_database,
            lock_timeout=settings.migration_lock_timeout,
            sqlite_page_size=settings.sqlite_page_size,
        )
        logger.info("database %s", migrated.describe())
    return database


async def _create_first_superuser(
    database: Database, settings: Settings, passwords: PasswordHasher
) -> None:
    """HEROAPI_FIRST_SUPERUSER_EMAIL and _PASSWORD, if set: that superuser, made once. An account
    that already has the email is never promoted behind its owner's back: a warning says so if it
    is not a superuser."""
    email = settings.first_superuser_email
    if not (email and settings.first_superuser_password):
        return
    password = settings.first_superuser_password.get_secret_value()
    if await create_superuser(database, email, password, passwords):
        logger.info("created the first superuser %s", email)
        return
    account = await crud.get_login(database=database, email=email)
    if account is not None and not account["is_superuser"]:
        logger.warning(
            "HEROAPI_FIRST_SUPERUSER_EMAIL names an existing account that is not a superuser: "
            "left as it is, not promoted (a superuser can promote it: PATCH /users/{id} with "
            '{"is_superuser": true})'
        )


def _tune_the_collector() -> tuple[int, ...]:
    """Set the garbage collector for serving; the thresholds it had, to restore at shutdown."""
    # Everything loaded so far (SQLAlchemy, Alembic, pydantic's schemas...) lives as long as the
    # process: out of the collector's sight, a full collection no longer scans it, which took the
    # p99 latency from ~50 ms to ~10 ms (docs/performance.md).
    gc.collect()
    gc.freeze()
    gc.enable()  # `heroapi serve` turns the collector off while the app is built
    # A request that waits for the database keeps its frames and futures alive meanwhile, so 32
    # requests in flight swing the collector's allocation count by thousands: at the default
    # threshold (700) that set off a young collection every ~8 requests, each one walking every
    # request in flight (~40 us per PostgreSQL request; ~5 us at 7000).
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    return thresholds


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """From start-up to shutdown: the database (migrated if asked), the password hasher, the
    throttle and the first superuser, for the settings `create_app` put in `app.state`."""
    settings: Settings = app.state.settings
    database = await _open_database(settings)
    app.state.database = database
    passwords = app.state.passwords = PasswordHasher.for_settings(settings)
    app.state.throttle = Throttle(database, settings, passwords)
    # The signing key is read (or made) at the first use.
    app.state.tokens = app.state.cursors = None
    await _create_first_superuser(database, settings, passwords)
    logger.info("heroapi %s serving %s", __version__, settings.database.render())
    thresholds = _tune_the_collector()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        passwords.close()
        await database.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The heroapi ASGI app for `settings` (by default, the environment's)."""
    settings = settings or get_settings()
    if settings.env == "production" and settings.auth_mode == "open":
        logger.warning(
            "HEROAPI_AUTH_MODE is 'open': anyone can create, change and delete heroes, users "
            "and items; set HEROAPI_AUTH_MODE=required unless this is what you want"
        )
    app = FastAPI(
        # None: FastAPI's defaults (spans and metrics when OpenTelemetry providers are set up).
        telemetry=None if settings.opentelemetry else NO_TELEMETRY,
        title="heroapi",
        version=__version__,
        summary="The FastAPI SQL tutorial's Hero and Users/Items APIs, built for real use.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs(), without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_throttle_errors(app)
    # Built for this auth mode: each route's dependencies are its rule's (policy.RULES), none in
    # `open` mode for the tutorial's routes, so /openapi.json asks for a token only where one is.
    for resource in (heroes.ROUTES, users.ROUTES, items.ROUTES, login.ROUTES, health.ROUTES):
        add_routes(app, resource, mode=settings.auth_mode)
    install_docs(app)
    document_statuses(app)
    install_middleware(app, settings)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn heroapi.main:app`: built on first use, so importing this module reads no settings.
    if name == "app":
        settings = get_settings()
        configure_logging(settings.log_level)
        app = create_app(settings)
        globals()["app"] = app
        return app
    raise AttributeError(name)
