"""The throttle's answers over HTTP: the 429 of a used-up limit, the 503 of a hashing turn that
never came, and the early refusal of an address this process already knows to be past its limit
(`heroapi.throttle` counts; this module only answers)."""

import logging
from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from heroapi.security import HashingBusy
from heroapi.throttle import Throttle, Throttled

logger = logging.getLogger("heroapi")

HASHING_RETRY_AFTER: Final = 1


def throttled_response(error: Throttled) -> JSONResponse:
    """The 429 of a used-up limit, with `Retry-After` and the IETF RateLimit fields."""
    limit = error.counted.limit
    name = f'"{limit.name}"'
    return JSONResponse(
        {"detail": "Too many attempts; retry later"},
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={
            "Retry-After": str(error.retry_after),
            "RateLimit-Policy": f"{name};q={limit.quota};w={limit.window}",
            "RateLimit": f"{name};r=0;t={error.retry_after}",
        },
    )


async def refused_early(scope: Scope, receive: Receive, send: Send, limit_name: str) -> bool:
    """Answer the request 429 before FastAPI reads it, if this process already knows its client
    address to be throttled under `limit_name` (`Throttle.known_refusal`), held back as
    `Throttle.hold` says; whether it did. A flood's attempts past their limit then cost no form
    parsing and no dependency solving, which keeps the event loop free for everyone else. What
    is not refused here is throttled as always, by the handler."""
    throttle: Throttle = scope["app"].state.throttle
    refusal = throttle.known_refusal(scope, limit_name)
    if refusal is None:
        return False
    await throttle.hold(refusal)
    await throttled_response(refusal)(scope, receive, send)
    return True


async def _on_throttled(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Throttled)
    return throttled_response(error)


async def _on_hashing_busy(request: Request, _error: Exception) -> JSONResponse:
    logger.warning("password hashing is saturated: %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": "Too many logins at once; retry shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(HASHING_RETRY_AFTER)},
    )


def install_throttle_errors(app: FastAPI) -> None:
    """Answer `Throttled` with its 429 and `HashingBusy` with a 503, wherever they are raised."""
    app.add_exception_handler(Throttled, _on_throttled)
    app.add_exception_handler(HashingBusy, _on_hashing_busy)
