"""Prometheus metrics: one registry the whole process reports into, served at ``GET /metrics``.

The sender and the adapters record what they do through the small functions here (never through
``prometheus_client`` directly), so the metric names and labels are defined once. Outbox depth is not a counter
anybody updates: it is read from the database at scrape time by :class:`OutboxCollector`, so every worker process
reports the same truth and nothing drifts.

Metrics (all prefixed ``blendwise_``):

* ``outbox_deliveries{state}``: outbox rows by state (pending, sending, sent, failed, skipped), at scrape time.
* ``sends_total{platform}``: platform calls that delivered a message (one per part of a multi-part lesson).
* ``rate_limited_total{platform}``: calls the platform answered with HTTP 429.
* ``send_seconds{platform}``: how long a platform send call took.
* ``ack_seconds{platform}``: how long an inbound request took until it was acknowledged.
* ``lease_reclaims_total``: outbox claims taken back after their lease expired (a worker died or stalled).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: The content type Prometheus expects for the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)

SENDS = Counter("blendwise_sends", "Messages delivered to a platform.", ["platform"], registry=REGISTRY)
RATE_LIMITED = Counter(
    "blendwise_rate_limited", "Platform calls answered with HTTP 429.", ["platform"], registry=REGISTRY
)
SEND_SECONDS = Histogram(
    "blendwise_send_seconds",
    "Duration of one platform send call.",
    ["platform"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "blendwise_ack_seconds",
    "Time from receiving an inbound platform request to acknowledging it (Slack wants < 3 s).",
    ["platform"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3),
    registry=REGISTRY,
)
LEASE_RECLAIMS = Counter(
    "blendwise_lease_reclaims", "Outbox claims reclaimed after their lease expired.", registry=REGISTRY
)


def sent(platform: str, seconds: float) -> None:
    """One successful platform send of ``seconds``."""
    SENDS.labels(platform).inc()
    SEND_SECONDS.labels(platform).observe(seconds)


def rate_limited(platform: str) -> None:
    RATE_LIMITED.labels(platform).inc()


def acked(platform: str, seconds: float) -> None:
    ACK_SECONDS.labels(platform).observe(seconds)


def lease_reclaimed(count: int = 1) -> None:
    if count:
        LEASE_RECLAIMS.inc(count)


class OutboxCollector(Collector):
    """Reads outbox depth by state from the database on each scrape (one grouped ``COUNT``)."""

    STATES = ("pending", "sending", "sent", "failed", "skipped")

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select

        from bot.storage.models import Delivery

        family = GaugeMetricFamily("blendwise_outbox_deliveries", "Outbox rows by state.", labels=["state"])
        counts = dict.fromkeys(self.STATES, 0)
        with self.engine.connect() as conn:
            for state, n in conn.execute(select(Delivery.state, func.count()).group_by(Delivery.state)):
                counts[str(state)] = int(n)
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family


_outbox: OutboxCollector | None = None


def watch_outbox(engine: Any) -> None:
    """Report this database's outbox depth (the latest engine wins: one runtime per process)."""
    global _outbox
    if _outbox is not None:
        REGISTRY.unregister(_outbox)
    _outbox = OutboxCollector(engine)
    REGISTRY.register(_outbox)


def exposition() -> bytes:
    """The current metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)
