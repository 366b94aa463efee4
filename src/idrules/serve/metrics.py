"""Prometheus metrics, all named ``idrules_*``: decisions by outcome, the time each decision
took, and answers by HTTP status.

With ``--workers N`` each worker process counts its own; Prometheus scrapes one port, and
the kernel hands the scrape to any worker, so the runner gives the workers a directory of
their own (``PROMETHEUS_MULTIPROC_DIR``, set before they import prometheus_client) and a
scrape sums every worker's files (prometheus_client's multiprocess mode): the numbers are
the server's, whichever worker answers.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

#: decision latency buckets, seconds: from a fast in-memory decision to a slow database
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metrics of one server process. ``aggregate``: this process is one of several
    workers, and a scrape reports the sum of all of them."""

    def __init__(self, *, aggregate: bool = False) -> None:
        self.aggregate = aggregate
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "idrules_decisions",
            "Decisions made, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "idrules_decision_seconds",
            "Time to decide one POST /v1/decide request (body parsed to decision made)",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "idrules_http_responses",
            "HTTP answers, by status code",
            ["status"],
            registry=self.registry,
        )

    def decided(self, outcome: str, seconds: float) -> None:
        self.decisions.labels(outcome).inc()
        self.latency.observe(seconds)

    def answered(self, status: int) -> None:
        self.responses.labels(str(status)).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text of every metric, and its media type."""
        if not self.aggregate:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        summed = CollectorRegistry()
        MultiProcessCollector(summed)  # type: ignore[no-untyped-call]
        return generate_latest(summed), CONTENT_TYPE_LATEST
