"""`heroapi serve`: the database made ready, then uvicorn serving the app."""

import asyncio
import gc
import logging
import os
import socket
import subprocess
import sys
import tempfile
from typing import Annotated

import typer

from heroapi.cli import existing, fail, load_settings
from heroapi.config import Settings

logger = logging.getLogger("heroapi")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Apply pending migrations, then serve the API (docs at /docs)."""
    import uvicorn

    from heroapi.logs import configure_logging, log_config

    settings = load_settings()
    # From here on every line is JSON, uvicorn's too; a reason not to start stays one plain line.
    configure_logging(settings.log_level)
    port_problem = _cannot_listen(host, port)
    if port_problem:
        fail(port_problem)
    if workers == 1 and not reload:
        # The app is built in this process: no collection while its thousands of classes and
        # schemas are made (up to 0.1 s of the start-up, for garbage that is nearly all kept).
        # Its lifespan collects once, freezes what was loaded, and turns the collector back on.
        gc.disable()
    prepare_database(settings)
    logger.info("serving on http://%s:%d (docs at http://%s:%d/docs)", host, port, host, port)
    # Several workers add up their metrics through files in one directory, made fresh per run.
    with tempfile.TemporaryDirectory(prefix="heroapi-metrics-") as metrics_directory:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_directory)
        uvicorn.run(
            "heroapi.main:app",
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            # X-Forwarded-* are read by the app itself, from HEROAPI_TRUSTED_PROXIES only
            # (`middleware.proxies`): uvicorn's reading (from loopback by default) would
            # hide which peer sent them, and with it whether X-Forwarded-Host may be believed.
            proxy_headers=False,
            access_log=False,  # heroapi logs one JSON line per request itself
            ws="none",  # heroapi has no WebSocket route: nothing of one is imported
            timeout_graceful_shutdown=30,
            log_config=log_config(settings.log_level),
        )


def prepare_database(settings: Settings) -> None:
    """Before serving: with HEROAPI_MIGRATE_ON_START, bring the schema to the latest migration;
    without, fail in one line if the database cannot be reached.

    The usual start, on a database already up to date, costs one query and never imports
    Alembic (`revisions.schema_at_head` reads the head from the migration files). Only a database
    behind them is migrated, by `heroapi db upgrade` in a child process, so that the server (this
    process, with one worker) never holds Alembic; under the migration lock (migrate.py), one of
    several processes starting together migrates and the others find the work done. Each
    worker's lifespan checks again, and migrates if the database is somehow still behind.
    """
    from heroapi.db import DatabaseError, create_database
    from heroapi.revisions import schema_at_head

    if not settings.migrate_on_start:
        existing(settings.database)

    async def look() -> bool:
        database = create_database(settings)
        await database.connect()
        try:
            if settings.migrate_on_start:
                return await schema_at_head(database)
            await database.ping()
            return True
        finally:
            await database.close()

    try:
        ready = asyncio.run(look())
    except Exception as error:
        if settings.migrate_on_start:
            ready = False  # the migration finds out, and says in one line, what is wrong
        elif isinstance(error, DatabaseError):
            fail(f"cannot reach {settings.database.render()}: {error}")
        else:
            raise
    if not ready:
        returncode = _upgrade_in_a_child()
        if returncode != 0:
            raise typer.Exit(returncode)


def _upgrade_in_a_child() -> int:
    """`heroapi db upgrade` in a child process, its lines passed on as log lines as they come
    (its one-line failure, `heroapi: ...`, as it is)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "heroapi", "db", "upgrade"], stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    with child.stderr:
        for line in child.stderr:
            if line.startswith("heroapi: "):
                sys.stderr.write(line)
            else:
                logger.info("%s", line.rstrip("\n"))
    return child.wait()


def _cannot_listen(host: str, port: int) -> str | None:
    """Why heroapi could not listen on host:port (in use, no such address), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot listen on {host}: {error.strerror}"
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None
