"""How errors reach clients: always a JSON body with `detail`, never a stack trace.

- 422 keeps FastAPI's shape (`detail` is a list of `{type, loc, msg, input}`), but never echoes
  a secret back (`secret_name`, passwords), whatever the body's shape, and never fails on input
  JSON cannot carry.
- 503 with `Retry-After` when the database cannot be reached or every connection is busy, or
  when it gave up on a statement another transaction's locks held up (lock wait timeout, deadlock).
- 409 when a database constraint refuses a write that no route maps to a better answer.
"""

import logging
import math
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from heroapi.db import DatabaseUnavailable, DataRejected, IntegrityViolation, TransactionConflict

logger = logging.getLogger("heroapi")

# Field names whose values never appear in a response or a log line. Credentials too: the OAuth2
# login form's `client_secret`, and a refresh token sent back to be exchanged.
SECRET_FIELDS: Final = frozenset(
    {
        "secret_name",
        "password",
        "new_password",
        "current_password",
        "client_secret",
        "refresh_token",
    }
)
REDACTED: Final = "[redacted]"
RETRY_AFTER_SECONDS: Final = 1
ECHO_MAX_LENGTH: Final = 300


class ErrorDetail(BaseModel):
    """An error answer: `{"detail": "..."}`."""

    detail: str


def _redact(value: Any) -> Any:
    """The value with secret fields masked and what JSON cannot hold (NaN, lone surrogates) made
    printable."""
    if isinstance(value, Mapping):  # a dict, or form data
        return {
            str(key): REDACTED if key in SECRET_FIELDS else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        if len(value) > ECHO_MAX_LENGTH:  # a 1 MB string is not sent back whole
            value = value[:ECHO_MAX_LENGTH] + "...[truncated]"
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return _redact(value.decode("utf-8", "backslashreplace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _safe_input(loc: list[Any], value: Any) -> Any:
    if any(part in SECRET_FIELDS for part in loc):
        return REDACTED
    if loc == ["body"] and not isinstance(value, Mapping):
        # A whole body that is not an object (an array, a JSON string, another Content-Type):
        # no field name says which of its parts is a secret, so none of it is repeated.
        return REDACTED
    return _redact(value)


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's 422 items, safe to send: no secrets, nothing JSON cannot encode."""
    items = []
    for error in errors:
        item = {key: error[key] for key in ("type", "loc", "msg") if key in error}
        item["loc"] = [_redact(part) for part in item.get("loc", ())]
        if "input" in error:
            item["input"] = _safe_input(item["loc"], error["input"])
        if "ctx" in error:
            item["ctx"] = {key: _redact(value) for key, value in error["ctx"].items()}
        items.append(item)
    return items


async def _on_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # `validation_errors` leaves nothing JSON cannot encode: a 422 never turns into a 500 here.
    detail = validation_errors(error.errors())
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _retry_later(detail: str) -> JSONResponse:
    """503 with `Retry-After`: the request may succeed if sent again shortly."""
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable during %s %s: %s", request.method, request.url.path, error)
    return _retry_later("The database is unavailable; retry later")


async def _on_transaction_conflict(request: Request, error: Exception) -> JSONResponse:
    logger.warning("lock conflict during %s %s: %s", request.method, request.url.path, error)
    return _retry_later("A concurrent change held up this request; retry")


async def _on_integrity_violation(request: Request, error: Exception) -> JSONResponse:
    logger.info("constraint refused %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(
        {"detail": "The change conflicts with stored data"},
        status_code=status.HTTP_409_CONFLICT,
    )


async def _on_data_rejected(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database refused a value in %s %s: %s", request.method, request.url.path, error)
    detail = [{"type": "value_error", "loc": ["body"], "msg": "The database refused a value"}]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(DatabaseUnavailable, _on_database_unavailable)
    app.add_exception_handler(TransactionConflict, _on_transaction_conflict)
    app.add_exception_handler(IntegrityViolation, _on_integrity_violation)
    app.add_exception_handler(DataRejected, _on_data_rejected)
