"""413 for a request body over HEROAPI_MAX_BODY_SIZE, as every client can read it."""

import asyncio
import contextlib
import json
from typing import Any

from fastapi import status


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
