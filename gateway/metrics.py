"""Prometheus metrics: app-prefixed names, base units, `_total` counters, no per-device or per-terminal labels.

Per-device and per-terminal figures live in the database and the API (unbounded
cardinality does not belong in Prometheus); here are the aggregates.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway import alerts
from gateway.store import Store

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("tracegw_ingest_messages_total", "MQTT messages taken from the broker, by topic kind",
                                ["kind"], registry=self.registry)
        self.events = Counter("tracegw_ingest_events_total", "Events by result: stored, duplicate (a retransmission "
                              "counted, not stored), rejected", ["result"], registry=self.registry)
        self.rejections = Counter("tracegw_ingest_rejected_total", "Messages quarantined, by reason",
                                  ["reason"], registry=self.registry)
        self.tickets = Counter("tracegw_tickets_total", "POS tickets by result: stored, repeated, refused",
                               ["result"], registry=self.registry)
        self.ack_latency = Histogram("tracegw_ack_latency_seconds", "From receiving a message to acknowledging it "
                                     "after its commit", buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.commit_duration = Histogram("tracegw_commit_duration_seconds", "One batch transaction",
                                         buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_failures = Counter("tracegw_batch_failures_total", "Batches whose commit failed (redelivered)",
                                      registry=self.registry)
        self.registry.register(_StoreCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._store.reading() as tx:
            devices = tx.all("SELECT online, status_ms > 0, backlog, max_seq - stored FROM device_state")
            live = alerts.open_counts(tx)
            quarantined = tx.one("SELECT count(*), coalesce(sum(times), 0) FROM quarantine")
        states = GaugeMetricFamily("tracegw_devices", "Registered devices by state", labels=["state"])
        online = sum(1 for row in devices if row[1] and row[0])
        offline = sum(1 for row in devices if row[1] and not row[0])
        states.add_metric(["online"], online)
        states.add_metric(["offline"], offline)
        states.add_metric(["never_seen"], len(devices) - online - offline)
        yield states
        backlog = GaugeMetricFamily("tracegw_device_backlog_events", "Unacknowledged events devices report, summed "
                                    "and the largest one", labels=["stat"])
        backlog.add_metric(["sum"], sum(int(row[2]) for row in devices))
        backlog.add_metric(["max"], max((int(row[2]) for row in devices), default=0))
        yield backlog
        yield GaugeMetricFamily("tracegw_missing_seqs", "Seqs devices wrote that the store lacks (must reach 0)",
                                value=sum(max(0, int(row[3])) for row in devices))
        family = GaugeMetricFamily("tracegw_alerts_live", "Open and acknowledged alerts", labels=["type", "state"])
        for (kind, state), count in sorted(live.items()):
            family.add_metric([kind, state], count)
        yield family
        assert quarantined is not None
        yield GaugeMetricFamily("tracegw_quarantine_messages", "Distinct messages held in quarantine",
                                value=int(quarantined[0]))
