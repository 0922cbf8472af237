"""How errors reach clients: always a JSON body with `detail`, never a stack trace.

- 422 keeps FastAPI's shape (`detail` is a list of `{type, loc, msg, input}`), but never echoes
  a secret back (`secret_name`, passwords), whatever the body's shape, and never fails on input
  JSON cannot carry.
- 503 with `Retry-After` when the database cannot be reached or every connection is busy, or
  when it gave up on a statement another transaction's locks held up (lock wait timeout, deadlock).
- 409 when a database constraint refuses a write that no route maps to a better answer.
"""

import asyncio
import contextlib
import json
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


class _BodyTooLarge(Exception):
    """Raised into the app when the body it reads grows past the limit."""


class BodyLimit:
    """413, as JSON, for a request body over `max_body_size` bytes; nothing of it is used.

    A declared Content-Length over the limit is refused before the body is read. A body whose
    length is not settled by one Content-Length alone (a Transfer-Encoding, with or without a
    Content-Length beside it) is counted as it arrives: once past the limit, the app's reading
    stops, and whatever the app then answers is replaced by the 413. (FastAPI's own
    `max_body_size` answers the first case in plain text, outside the middleware that logs and
    counts requests.)

    How the 413 reaches every client, a "lingering close" as web servers do it: a server that
    closes the connection while its client is still sending makes the client's kernel answer the
    unread bytes with a reset, and most clients (httpx, requests, browsers) then report the
    reset, not the 413 waiting unread in their buffer. So the 413's status, headers and body are
    sent first (a client that reads early has them at once), then the rest of the refused body
    is read and dropped, and only then is the response finished: uvicorn's `receive()` answers
    `http.disconnect` once it is. The 413 says `Connection: close`: what is left of a refused
    request is never parsed as the next one.

    The reading is bounded so that no client can make heroapi read gigabytes or hold a
    connection open: a body declared longer than `discard_size`, or still arriving past
    `discard_size` bytes or `discard_seconds`, is answered and its connection closed at once
    (a client still sending then sees the reset: a flood, not a user). A client waiting for
    `100 Continue` is never asked for its body: the 413 comes instead, and the connection closes.
    """

    def __init__(
        self,
        app: Any,
        *,
        max_body_size: int,
        discard_size: int = 16 * 1024 * 1024,
        discard_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.discard_size = discard_size
        self.discard_seconds = discard_seconds
        detail = json.dumps({"detail": f"Request body over {max_body_size} bytes"}).encode()
        self._refusal_body = detail
        self._refusal_start = {
            "type": "http.response.start",
            "status": status.HTTP_413_CONTENT_TOO_LARGE,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(detail)).encode()),
                (b"connection", b"close"),
            ],
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths: list[bytes] = []
        streamed = False
        expects_continue = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                streamed = True
            elif name == b"expect":
                expects_continue = value.lower() == b"100-continue"
        if not streamed:
            if any(not value.isdigit() or int(value) > self.max_body_size for value in lengths):
                # Worth reading to its end only if one length says where that end is.
                declared = int(lengths[0]) if len(set(lengths)) == 1 else None
                readable = declared is not None and declared <= self.discard_size
                await self._refuse(receive, send, discard=readable and not expects_continue)
                return
            if len(lengths) <= 1:
                # One Content-Length: the server reads no more than it declares. None (and no
                # Transfer-Encoding): HTTP/1.1 says there is no body. Nothing to watch.
                await self.app(scope, receive, send)
                return
        # A Transfer-Encoding decides the body's length whatever a Content-Length beside it
        # says (RFC 9112, 6.3; h11 reads it so), and several Content-Lengths settle nothing.
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Any, receive: Any, send: Any) -> None:
        """The app, with the body's bytes counted as they arrive."""
        received = 0
        too_large = False
        whole = False  # the body's last part has come: nothing is left to read
        response_started = False

        async def limited_receive() -> Any:
            nonlocal received, too_large, whole
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > self.max_body_size:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal response_started
            if too_large:
                return  # the app's answer to a cut-off body is replaced below
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not response_started:
            await self._refuse(receive, send, discard=not whole, received=received)

    async def _refuse(self, receive: Any, send: Any, *, discard: bool, received: int = 0) -> None:
        """The 413; with `discard`, the rest of the body read and dropped before it is finished
        (up to `discard_size` bytes in all, counting the `received` ones, and `discard_seconds`)."""
        await send(self._refusal_start)
        await send({"type": "http.response.body", "body": self._refusal_body, "more_body": True})
        if discard:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.discard_seconds):
                    while received <= self.discard_size:
                        message = await receive()
                        if message["type"] != "http.request":
                            break  # the client went away
                        received += len(message.get("body", b""))
                        if not message.get("more_body", False):
                            break
        await send({"type": "http.response.body", "body": b""})
