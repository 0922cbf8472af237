"""Health checks for load balancers and orchestrators, and the Prometheus metrics."""

import asyncio
import hmac
import logging
import math
from collections.abc import Sequence
from typing import Any, Final

from fastapi import Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from heroapi import crud
from heroapi.db import ReplicaState
from heroapi.exposition import metrics_text
from heroapi.revisions import head_revision
from heroapi.routes.deps import app_database, not_authenticated
from heroapi.routes.routing import Endpoint, Resource, Responses

logger = logging.getLogger("heroapi")

UNAVAILABLE: Responses = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "The database is not ready; see `reason`"}
}


async def live() -> dict[str, str]:
    """The process answers (restart it if this fails)."""
    return {"status": "ok"}


async def ready(request: Request) -> JSONResponse:
    """The database answers in time and its schema is at the latest migration."""
    database = app_database(request.scope)
    timeout = request.app.state.settings.health_timeout
    head = head_revision()
    # Read replicas are reported, never a reason to be unready: without them the primary serves.
    replicas = _replicas(database.replicas())
    try:
        revision = await asyncio.wait_for(crud.schema_revision(database=database), timeout)
    except TimeoutError:
        return _unavailable(f"the database did not answer within {timeout:g} s", replicas)
    except Exception as error:  # whatever the driver raised, the answer is "not ready"
        # The driver's words name hosts, ports, databases and users: for the operator's log,
        # not for whoever asks (the endpoint is open to anyone).
        logger.warning(
            "readiness: the database cannot be queried: %s: %s", type(error).__name__, error
        )
        return _unavailable("the database cannot be queried", replicas)
    if revision != head:
        reason = f"the schema is at {revision or 'no revision'}, the latest is {head}"
        return _unavailable(reason, replicas)
    return JSONResponse({"status": "ok", "database": "ok", "schema": revision} | replicas)


def _replicas(states: Sequence[ReplicaState]) -> dict[str, Any]:
    """Each read replica by its index, in fixed words and numbers: `serving` (reads go to it),
    `behind` (up, but lagging more than HEROAPI_REPLICA_MAX_LAG) or `down`; its lag in seconds
    (null while down, or further behind than the lag monitor remembers)."""
    if not states:
        return {}
    return {
        "replicas": [
            {
                "replica": state.index,
                "state": "serving" if state.serving else "behind" if state.up else "down",
                "lag_seconds": (
                    round(state.lag, 3)
                    if state.lag is not None and math.isfinite(state.lag)
                    else None
                ),
            }
            for state in states
        ]
    }


def _unavailable(reason: str, replicas: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        {"status": "unavailable", "reason": reason} | replicas,
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, database connections (all workers)."""
    _require_metrics_token(request)
    body, content_type = metrics_text(app_database(request.scope).replicas())
    return Response(body, media_type=content_type)


def _require_metrics_token(request: Request) -> None:
    """With `metrics_token` set, a 401 unless the request bears it (`Authorization: Bearer`)."""
    token: SecretStr | None = request.app.state.settings.metrics_token
    if token is None:
        return
    scheme, given = get_authorization_scheme_param(request.headers.get("Authorization"))
    # Headers arrive decoded as Latin-1: encoded back, they are the bytes the client sent. In
    # constant time, so the answer's timing does not tell how much of a guess was right.
    matches = hmac.compare_digest(given.encode("latin-1"), token.get_secret_value().encode())
    if scheme.lower() != "bearer" or not matches:
        raise not_authenticated()


# Outside policy.RULES (`OUTSIDE_RULES`): open to anyone, and /metrics checks its own token.
ROUTES: Final = Resource(
    "health",
    [
        Endpoint("GET", "/health/live", live),
        Endpoint("GET", "/health/ready", ready, responses=UNAVAILABLE),
        Endpoint("GET", "/metrics", metrics, include_in_schema=False),
    ],
)
