"""What operators see: request ids, one JSON access-log line per request, Prometheus metrics.

One pure-ASGI middleware does all of it per request (and answers HEAD for every GET route), so
the hot paths pay for one wrapper, not a stack of `BaseHTTPMiddleware`s.

Metrics work with several worker processes: `heroapi serve` points prometheus-client's
multiprocess mode at a fresh directory (`PROMETHEUS_MULTIPROC_DIR`) before the workers start,
and `/metrics` then adds up every worker's values.
"""

import asyncio
import contextvars
import json
import logging
import logging.config
import os
import random
import re
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.middleware.gzip import GZipMiddleware

if TYPE_CHECKING:
    from heroapi.db import ReplicaState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER: Final = "x-request-id"
# A client's id is kept if it is short and plain; anything else is replaced (log injection).
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE: Final = "<unmatched>"

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUESTS = Counter(
    "heroapi_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "heroapi_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POOL_CONNECTIONS = Gauge(
    "heroapi_database_connections",
    "Database connections of this process, by state (in_use, idle).",
    ["state"],
    multiprocess_mode="livesum",
)


def metrics_text(replicas: Sequence["ReplicaState"] = ()) -> tuple[bytes, str]:
    """The exposition text for /metrics: every worker's values in multiprocess mode, and the
    read replicas as the answering worker sees them now."""
    for records in list(_RECORDS):
        records.flush()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if replicas:
        own = CollectorRegistry(auto_describe=False)
        own.register(ReplicaCollector(replicas))
        body += generate_latest(own)
    return body, CONTENT_TYPE_LATEST


class ReplicaCollector(Collector):
    """The read replicas' gauges, by their index in HEROAPI_DATABASE_REPLICA_URLS (never their
    address), made at scrape time from the answering worker's monitor. Not stored in the
    multiprocess files: every worker watches the same replicas, and summing or keeping stale
    values of other workers would say less than one worker's current view."""

    def __init__(self, replicas: Sequence["ReplicaState"]) -> None:
        self._replicas = replicas

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "heroapi_replica_up",
            "Whether the read replica answered its last check.",
            labels=["replica"],
        )
        serving = GaugeMetricFamily(
            "heroapi_replica_serving",
            "Whether reads go to the read replica (up and within HEROAPI_REPLICA_MAX_LAG).",
            labels=["replica"],
        )
        lag = GaugeMetricFamily(
            "heroapi_replica_lag_seconds",
            "How far the read replica's replay is behind the primary (+Inf: beyond what the "
            "monitor remembers; absent while it is down).",
            labels=["replica"],
        )
        for replica in self._replicas:
            label = [str(replica.index)]
            up.add_metric(label, float(replica.up))
            serving.add_metric(label, float(replica.serving))
            if replica.lag is not None:
                lag.add_metric(label, replica.lag)
        yield from (up, serving, lag)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (`%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: what log collectors parse without configuration. The time is
    the access log's (UTC, milliseconds), so every line of a server sorts and parses alike."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
            entry["request_id"] = getattr(record, "request_id", request_id_var.get())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


# uvicorn's loggers: "uvicorn.error" (start-up, shutdown, errors; it propagates to "uvicorn")
# and "uvicorn.access" (off under `heroapi serve`, which writes its own access lines).
_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.access")


def log_config(level: str = "INFO") -> dict[str, Any]:
    """For `logging.config.dictConfig` and uvicorn's `log_config`: heroapi's loggers and
    uvicorn's write JSON lines to stderr through `JSONFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": level, "propagate": False}
            for name in ("heroapi", *_UVICORN_LOGGERS)
        }
        | {"uvicorn.error": {"level": level, "propagate": True}},
    }


def configure_logging(level: str = "INFO") -> None:
    """heroapi's loggers write JSON lines to stderr; so do uvicorn's when they still have
    uvicorn's own format (`uvicorn heroapi.main:app`; a `--log-config` of the user's is kept)."""
    config = log_config(level)
    if not _uvicorn_has_its_default_format():
        for name in (*_UVICORN_LOGGERS, "uvicorn.error"):
            del config["loggers"][name]
    logging.config.dictConfig(config)


def _uvicorn_has_its_default_format() -> bool:
    handlers = logging.getLogger("uvicorn").handlers
    module = "uvicorn.logging"
    return bool(handlers) and all(
        type(handler.formatter).__module__ in (module, __name__) for handler in handlers
    )


# Methods counted under their own name; any other (a client may send anything) is counted as
# `_OTHER`, so clients cannot grow the metrics without bound.
_METHODS: Final = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
# An access-log line, written without building a dict per request. Every %s is JSON already:
# strings that may hold anything are encoded with orjson, the request id is a plain token.
_ACCESS_LINE: Final = (
    b'{"time":"%s.%03dZ","logger":"heroapi.access","method":%s,"route":%s,"path":%s,'
    b'"status":%d,"duration_ms":%.3f,"request_id":"%s","client":%s}'
)


class RequestRecords:
    """What each request leaves behind: its metrics and, if enabled, its access-log line (one
    JSON object, written directly rather than through `logging`, whose `LogRecord` and formatter
    cost more than the rest of a request's bookkeeping).

    A request only appends a tuple; every `FLUSH_AFTER` seconds the batch is counted into the
    metrics and its lines written in one system call. `/metrics` flushes first, so a scrape sees
    every request this process answered; shutdown flushes too. A process killed outright loses
    at most that fraction of a second of lines.
    """

    FLUSH_AFTER: Final = 0.05

    def __init__(self, *, access_log: bool, stream: BinaryIO | None = None) -> None:
        self.access_log = access_log
        self._stream = stream
        self._pending: list[tuple[Any, ...]] = []
        # Metric children and JSON fragments, made once: `labels()` takes a lock and builds keys.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}
        self._json: dict[str, bytes] = {}
        self._second = -1
        self._stamp = b""
        _RECORDS.add(self)

    def add(
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        seconds: float,
        request_id: bytes,
        client: str,
    ) -> None:
        if not self._pending:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_AFTER, self.flush)
            except RuntimeError:  # no event loop: nothing would flush later
                self._pending.append(
                    (time.time(), method, route, path, status, seconds, request_id, client)
                )
                self.flush()
                return
        self._pending.append(
            (time.time(), method, route, path, status, seconds, request_id, client)
        )

    def _encoded(self, text: str) -> bytes:
        """`text` as a JSON string: route templates, methods and clients repeat, paths rarely."""
        encoded = self._json.get(text)
        if encoded is None:
            encoded = orjson.dumps(text)
            if len(self._json) < 1024:
                self._json[text] = encoded
        return encoded

    def _latency(self, route: str, method: str) -> Any:
        latency = self._latencies.get((route, method))
        if latency is None:
            latency = self._latencies[route, method] = LATENCY.labels(route, method)
        return latency

    def flush(self) -> None:
        if not self._pending:
            return
        records, self._pending = self._pending, []
        answered: dict[tuple[str, str, int], int] = {}
        lines: list[bytes] = []
        encoded = self._encoded
        for now, method, route, path, status, seconds, request_id, client in records:
            counted = method if method in _METHODS else "_OTHER"
            key = (route, counted, status)
            answered[key] = answered.get(key, 0) + 1
            self._latency(route, counted).observe(seconds)
            if self.access_log:
                second = int(now)
                if second != self._second:  # formatted once a second, not once a request
                    self._second = second
                    self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
                lines.append(
                    _ACCESS_LINE
                    % (
                        self._stamp,
                        int((now - second) * 1000),
                        encoded(method),
                        encoded(route),
                        orjson.dumps(path),
                        status,
                        seconds * 1000,
                        request_id,
                        encoded(client),
                    )
                )
        for key, count in answered.items():
            counter = self._counters.get(key)
            if counter is None:
                route, method, status = key
                counter = self._counters[key] = REQUESTS.labels(route, method, str(status))
            counter.inc(count)
        if lines:
            stream = self._stream or sys.stderr.buffer
            sys.stderr.flush()  # what `logging` wrote first comes first
            lines.append(b"")
            stream.write(b"\n".join(lines))
            stream.flush()


# Every process's records, flushed before /metrics answers.
_RECORDS: "weakref.WeakSet[RequestRecords]" = weakref.WeakSet()


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


class GzipIfAccepted:
    """Starlette's GZipMiddleware, entered only for clients that accept gzip: for the others its
    pass-through still parsed and rewrote every response's headers (~5% of a small GET)."""

    def __init__(self, app: ASGIApp, *, minimum_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding":
                    if b"gzip" in value:
                        await self.gzip(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
