"""Prometheus metrics: app-prefixed names, base units, `_total` counters, no per-device or per-terminal labels.

Per-device and per-terminal figures live in the database and the API (unbounded
cardinality does not belong in Prometheus); here are the aggregates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gateway import version
from gateway.domain import alerts, devices, outbox, quarantine
from gateway.store.base import Store
from gateway.wire import topics

__all__ = ["Metrics", "REJECTION_REASONS"]

REJECTION_REASONS = (
    "oversized", "malformed_cbor", "not_mac0", "kid_mismatch", "unknown_device", "bad_mac", "schema", "replay",
    "seq_out_of_window", "bad_topic", "status_malformed", "ticket_invalid", "ticket_conflict", "unknown_terminal",
    "undecodable", "commit_failed", "answer_malformed")
"""The quarantine's reasons (docs/operations.md, "Refused messages"): each series exists from the start, at 0."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, store: Store) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the scrape
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
        self.forward_requests = Counter("tracegw_forward_requests_total", "Platform requests by outcome: accepted, "
                                        "refused (dead letters), retry (transport failure or unknown outcome), "
                                        "sign_no_refused (sent again after a new sign-in)",
                                        ["result"], registry=self.registry)
        self.forward_rows = Counter("tracegw_forward_rows_total", "Outbox rows settled: accepted or refused",
                                    ["result"], registry=self.registry)
        self.forward_latency = Histogram("tracegw_forward_request_seconds", "One platform request",
                                         buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.breaker_open = Gauge("tracegw_forward_breaker_open", "1 while the circuit breaker holds requests back",
                                  registry=self.registry)
        self.registry.register(_StoreCollector(store))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        Info("tracegw_build", "The gateway's version", registry=self.registry).info({"version": version()})
        for kind in (*topics.KINDS, "other"):
            self.messages.labels(kind)
        for result in ("stored", "duplicate"):
            self.events.labels(result)
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason)
        for result in ("stored", "repeated", "refused"):
            self.tickets.labels(result)
        for result in ("accepted", "refused", "retry", "sign_no_refused"):
            self.forward_requests.labels(result)
        for result in ("accepted", "refused"):
            self.forward_rows.labels(result)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._store.reading() as tx:
            states = devices.states(tx)
            live = alerts.open_counts(tx)
            held = quarantine.counts(tx).values()
            rows = outbox.state_counts(tx)
            oldest = outbox.oldest_unsettled_ms(tx)
            open_requests = outbox.request_counts(tx).get("open", 0)
        by_state = GaugeMetricFamily("tracegw_devices", "Registered devices by state", labels=["state"])
        online = sum(1 for state in states if state.seen and state.online)
        offline = sum(1 for state in states if state.seen and not state.online)
        by_state.add_metric(["online"], online)
        by_state.add_metric(["offline"], offline)
        by_state.add_metric(["never_seen"], len(states) - online - offline)
        yield by_state
        yield GaugeMetricFamily("tracegw_device_backlog_events", "Unacknowledged events devices report, summed",
                                value=sum(state.backlog for state in states))
        yield GaugeMetricFamily("tracegw_device_backlog_events_max", "The largest backlog one device reports",
                                value=max((state.backlog for state in states), default=0))
        yield GaugeMetricFamily("tracegw_missing_seqs", "Seqs devices wrote that the store lacks (must reach 0)",
                                value=sum(max(0, state.missing_seqs) for state in states))
        family = GaugeMetricFamily("tracegw_alerts_live", "Open and acknowledged alerts", labels=["type", "state"])
        for (kind, state), count in sorted(live.items()):
            family.add_metric([kind, state], count)
        yield family
        yield GaugeMetricFamily("tracegw_quarantine_messages", "Distinct messages held in quarantine",
                                value=sum(counts.messages for counts in held))
        yield GaugeMetricFamily("tracegw_quarantine_bytes", "Bytes of the messages held in quarantine",
                                value=sum(counts.bytes for counts in held))
        yield GaugeMetricFamily("tracegw_quarantine_dropped_messages", "Distinct messages dropped from quarantine "
                                "to keep its bounds (their counts kept per reason in the API)",
                                value=sum(counts.dropped_messages for counts in held))
        depth = GaugeMetricFamily("tracegw_outbox_rows", "Outbox rows by state (pending + sending = the outbox "
                                  "depth; dead = dead letters)", labels=["state"])
        for state, count in rows.items():
            depth.add_metric([state], count)
        yield depth
        yield GaugeMetricFamily("tracegw_outbox_oldest_seconds", "Age of the oldest row not yet settled",
                                value=(time.time() * 1000 - oldest) / 1000 if oldest else 0)
        yield GaugeMetricFamily("tracegw_forward_requests_open", "Requests stored and not yet settled",
                                value=open_requests)
