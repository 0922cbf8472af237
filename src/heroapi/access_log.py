"""The access log and request metrics: what each request leaves behind, written in batches.

One JSON line per request (when HEROAPI_ACCESS_LOG is on) and its count and duration in the
request metrics (`metrics.py`), both recorded by `middleware.observe`.
"""

import asyncio
import sys
import time
import weakref
from typing import Any, BinaryIO, Final

import orjson

from heroapi.metrics import LATENCY, REQUESTS

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


def flush_request_records() -> None:
    """Count and write every pending request of this process (before /metrics answers)."""
    for records in list(_RECORDS):
        records.flush()
