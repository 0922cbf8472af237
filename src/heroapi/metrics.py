"""heroapi's Prometheus metrics: the objects every layer counts into, and nothing else.

A leaf module (it imports nothing of heroapi), so the database layer counts its connections here
without importing the HTTP or operations code. `/metrics` answers with them (`exposition.py`).

Metrics work with several worker processes: `heroapi serve` points prometheus-client's
multiprocess mode at a fresh directory (`PROMETHEUS_MULTIPROC_DIR`) before the workers start,
and `/metrics` then adds up every worker's values.
"""

from prometheus_client import Counter, Gauge, Histogram

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
