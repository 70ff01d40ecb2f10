"""Prometheus metrics for /metrics: updates, handler errors and latency, outbox depth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """A registry of its own, so that two bots in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "carebot_updates_total", "Updates handled, by type", ["type"], registry=self.registry
        )
        self.errors = Counter(
            "carebot_handler_errors_total",
            "Updates whose handler raised, by type",
            ["type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "carebot_handler_seconds",
            "Time to handle one update",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "carebot_outbox_depth", "Outbox messages waiting to be sent", registry=self.registry
        )
        self.inbox_pending = Gauge(
            "carebot_inbox_pending", "Received updates not handled yet", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
