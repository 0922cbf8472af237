"""What `/metrics` answers: every worker's metrics (`metrics.py`), and the read replicas as the
answering worker sees them."""

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from heroapi.access_log import flush_request_records

if TYPE_CHECKING:
    from heroapi.db import ReplicaState


def metrics_text(replicas: Sequence["ReplicaState"] = ()) -> tuple[bytes, str]:
    """The exposition text for /metrics: every worker's values in multiprocess mode, and the
    read replicas as the answering worker sees them now."""
    flush_request_records()
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
