"""The application: `create_app()` builds it; every router is included here."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from heroapi import __version__, migrate
from heroapi.config import Settings, get_settings
from heroapi.db import create_database
from heroapi.errors import install_error_handlers
from heroapi.routes import heroes

logger = logging.getLogger("heroapi")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The heroapi ASGI app for `settings` (by default, the environment's)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            # Alembic is synchronous; under the lock, only one process migrates at a time.
            await asyncio.to_thread(
                migrate.upgrade, settings.database, lock_timeout=settings.migration_lock_timeout
            )
        database = create_database(settings)
        await database.connect()
        app.state.database = database
        logger.info("heroapi %s serving %s", __version__, settings.database.render())
        try:
            yield
        finally:
            await database.close()

    app = FastAPI(
        title="heroapi",
        version=__version__,
        summary="The FastAPI SQL tutorial's Hero API, built for real use.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(heroes.router)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn heroapi.main:app`: built on first use, so importing this module reads no settings.
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
