"""What operators see of each request: its id (`X-Request-ID`), its access-log line and its
metrics (`access_log.py`); and HEAD answered for every GET route.

One pure-ASGI middleware does all of it per request, so the hot paths pay for one wrapper, not a
stack of `BaseHTTPMiddleware`s.
"""

import random
import re
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heroapi.access_log import RequestRecords
from heroapi.logs import request_id_var

# A client's id is kept if it is short and plain; anything else is replaced (log injection).
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE: Final = "<unmatched>"


class ObservabilityMiddleware:
    """Request id, access log, metrics, and HEAD answered as a GET without its body."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.records = RequestRecords(access_log=access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if scope["type"] == "lifespan":
                    self.records.flush()  # the last requests' lines, before the process ends
            return
        started = time.perf_counter()
        method = scope["method"]
        head = method == "HEAD"
        if head:
            # FastAPI answers HEAD with 405 on GET routes: run the GET, send no body.
            scope = dict(scope, method="GET")
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        status = 500
        body_ended = False
        request_id_bytes = request_id.encode("ascii")
        header = (b"x-request-id", request_id_bytes)

        async def send_with_id(message: Message) -> None:
            nonlocal status, body_ended
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif head and message["type"] == "http.response.body":
                if body_ended:
                    return
                body_ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            client = scope.get("client")
            self.records.add(
                method,
                template,
                scope.get("path", ""),
                status,
                elapsed,
                request_id_bytes,
                client[0] if client else "-",
            )
            request_id_var.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _ACCEPTABLE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    # 128 random bits: unique enough to find a request by; not a secret (no system call).
    return f"{random.getrandbits(128):032x}"
