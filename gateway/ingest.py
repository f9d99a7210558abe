"""MQTT ingest: receive events, verify, commit in batches, then ack to the device and to the broker.

The broker session is persistent (fixed client id, no clean start, long session
expiry) and PUBACKs are manual: a message is acknowledged to the broker only
after the batch holding it is committed, so a gateway that dies mid-batch gets
it again. Nothing is answered with an MQTT error reason: what cannot be
accepted is quarantined, then acknowledged.

The MQTT session runs in a child process (gateway/mqtt_link.py). Here two
threads: one verifies a batch (MACs, schemas) while the other commits the batch
before it, so the verification overlaps SQLite's or PostgreSQL's own work
(which runs without the GIL). The verifier stays at most one batch ahead.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import cbor2

from gateway import pipeline
from gateway.commands import CommandType, sign_command
from gateway.devices import Status, parse_status
from gateway.metrics import Metrics
from gateway.mqtt_link import Link, LinkSettings, Received
from gateway.pipeline import Accepted, Rejected, TicketIn
from gateway.protocol import MAX_BATCH_BYTES, ProtocolError, encode_ack, parse_event, verify_mac0
from gateway.rules import Rules
from gateway.store import Store
from gateway.tickets import TicketError, parse_ticket

__all__ = ["IngestSettings", "Ingest", "split_messages", "TOPICS"]

log = logging.getLogger("gateway.ingest")
_MAX_BATCH_ITEMS = 64
_MAX_TICKET_BYTES = 65536
_CLOCK_COMMAND_EVERY_S = 60.0
TOPICS = ("tc/v1/+/ev", "tc/v1/+/status", "tc/v1/pos/+/ticket")
"""Device events, device status (retained), POS tickets (JSON, as the HTTP API takes them)."""


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    client_id: str = "trace-gateway-1"
    """Fixed, so the broker keeps the session (and queues events) while the gateway restarts. With a username it
    is the username (the shipped broker config binds client ids to user names); left out, it takes it."""
    username: str = ""
    """The gateway's broker user, one per instance; empty: anonymous (a broker that binds ids refuses it)."""
    password: str = ""
    shared_group: str = ""
    """When set, subscribe as $share/<group>/... so several gateways split the load."""
    batch_max: int = 500
    """Messages per commit; keep it below the broker's max_inflight_messages (1000 in the shipped config): the
    broker stops sending at its in-flight window until the gateway acknowledges, so a larger batch would wait."""
    batch_wait_ms: int = 20
    """How long a batch waits for more messages after its first."""
    set_clocks: bool = True
    """Send a signed time command (id = the gateway's ms clock) to a device whose status says its clock was never
    synced, at most once a minute per device. Off when another tool sends commands with its own ids."""


class _Message(NamedTuple):
    """One MQTT message as received from the link."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int


@dataclass
class _Verified:
    """A batch of messages sorted into what the commit takes."""

    messages: list[_Message]
    accepted: list[Accepted]
    rejected: list[Rejected]
    statuses: list[tuple[Status, int]]
    tickets: list[TicketIn]


def split_messages(payload: bytes) -> list[bytes]:
    """The COSE_Mac0 messages in an ev payload (one, or a CBOR array of them), each as its exact bytes."""
    if not payload or payload[0] >> 5 != 4:
        return [payload]
    if len(payload) > MAX_BATCH_BYTES:
        raise ProtocolError("oversized", f"batch of {len(payload)} bytes, limit {MAX_BATCH_BYTES}")
    stream = io.BytesIO(payload)
    try:
        head = cbor2.CBORDecoder(stream)
        info = payload[0] & 0x1F
        if info < 24:
            count = info
            stream.seek(1)
        elif info == 24 and len(payload) > 1:
            count = payload[1]
            stream.seek(2)
        else:
            raise ProtocolError("malformed_cbor", "batch array head is not a definite count below 256")
        if count > _MAX_BATCH_ITEMS:
            raise ProtocolError("oversized", f"batch of {count} messages, limit {_MAX_BATCH_ITEMS}")
        items = []
        for _ in range(count):
            start = stream.tell()
            head.decode()
            items.append(payload[start : stream.tell()])
    except (cbor2.CBORDecodeError, ValueError, TypeError) as error:
        raise ProtocolError("malformed_cbor", f"batch: {error}") from None
    if stream.tell() != len(payload):
        raise ProtocolError("malformed_cbor", "trailing bytes after the batch")
    return items


def _route(topic: str) -> tuple[str, str]:
    """(kind, name): ("ev"|"status", device) or ("ticket", terminal); ("", "") for anything else."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["tc", "v1"] and parts[3] in ("ev", "status") and parts[2]:
        return parts[3], parts[2]
    if len(parts) == 5 and parts[:3] == ["tc", "v1", "pos"] and parts[4] == "ticket" and parts[3]:
        return "ticket", parts[3]
    return "", ""


class Ingest:
    """Subscribes to events, statuses and tickets, and commits what it can accept, batch by batch."""

    def __init__(self, settings: IngestSettings, store: Store, rules: Rules, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self._inbox: queue.SimpleQueue[list[_Message]] = queue.SimpleQueue()
        self._carried: list[_Message] = []
        self._verified: queue.Queue[_Verified] = queue.Queue(maxsize=1)
        self._clock_sent: dict[str, float] = {}
        self._stopping = threading.Event()
        self._link = Link(LinkSettings(settings.broker_host, settings.broker_port, settings.client_id,
                                       settings.username, settings.password, tuple(self.subscriptions),
                                       logging.getLogger().getEffectiveLevel()), self._take)
        self._threads = [threading.Thread(target=self._verify_batches, name="ingest-verify", daemon=True),
                         threading.Thread(target=self._commit_batches, name="ingest-commit", daemon=True)]

    @property
    def subscriptions(self) -> list[str]:
        group = self.settings.shared_group
        return [f"$share/{group}/{topic}" if group else topic for topic in TOPICS]

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def alive(self) -> bool:
        """Both threads and the link run (the watchdog pings only while they do)."""
        return self._link.alive and all(thread.is_alive() for thread in self._threads)

    def start(self, timeout_s: float = 10) -> None:
        self._link.start()
        for thread in self._threads:
            thread.start()
        if not self._link.wait_connected(timeout_s):
            log.warning("broker %s:%d not reachable yet; retrying in the background",
                        self.settings.broker_host, self.settings.broker_port)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._link.stop()

    def _take(self, batch: list[Received]) -> None:
        self._inbox.put([_Message(*item) for item in batch])

    def _next_batch(self) -> list[_Message]:
        """Up to batch_max messages: the link's batches joined, waiting batch_wait_ms after the first for more;
        what goes beyond batch_max starts the next. Raises queue.Empty when nothing came for 0.2 s."""
        batch, self._carried = self._carried or self._inbox.get(timeout=0.2), []
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        while len(batch) < self.settings.batch_max:
            try:
                batch += self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
        batch, self._carried = batch[:self.settings.batch_max], batch[self.settings.batch_max:]
        return batch

    def _verify_batches(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._next_batch()
            except queue.Empty:
                continue
            try:
                verified = self._sort(batch)
            except Exception:
                self._failed(batch)
                continue
            while not self._stopping.is_set():
                try:
                    self._verified.put(verified, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _commit_batches(self) -> None:
        while not self._stopping.is_set():
            try:
                verified = self._verified.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._commit(verified)
            except Exception:
                self._failed(verified.messages)

    def _failed(self, batch: list[_Message]) -> None:
        """The batch stays unacknowledged; the broker sends it again after a reconnect."""
        log.exception("batch of %d messages failed; not acknowledged", len(batch))
        self.metrics.batch_failures.inc()
        self.counts["batch_failures"] += 1
        self._link.reconnect()

    def _sort(self, batch: list[_Message]) -> _Verified:
        verified = _Verified(batch, [], [], [], [])
        kinds: Counter[str] = Counter()
        for message in batch:
            kind, name = _route(message.topic)
            kinds[kind or "other"] += 1
            if kind == "ev":
                self._verify(message, name, verified.accepted, verified.rejected)
            elif kind == "status":
                self._status(message, name, verified.statuses, verified.rejected)
            elif kind == "ticket":
                self._ticket(message, name, verified.tickets, verified.rejected)
            else:
                self._reject(message, "", ProtocolError("bad_topic", f"topic {message.topic!r} is not ours"),
                             message.payload, verified.rejected)
        for kind, count in kinds.items():
            self.metrics.messages.labels(kind).inc(count)
        return verified

    def _commit(self, verified: _Verified) -> None:
        started = time.perf_counter()
        result = pipeline.commit(self.store, self.rules, accepted=verified.accepted, rejected=verified.rejected,
                                 statuses=verified.statuses, tickets_in=verified.tickets,
                                 instance=self.settings.client_id)
        self.metrics.commit_duration.observe(time.perf_counter() - started)
        self._count(result)
        publishes = [(f"tc/v1/{device}/ack", encode_ack(ack.acked_seq, ack.verdicts), 1)
                     for device, ack in result.acks.items()]
        for status, _ in verified.statuses:
            if status.online and status.clock == 0 and self.settings.set_clocks:
                publishes += self._clock_command(status.device)
        for outcome in result.tickets:
            answer = {"number": outcome.entry.ticket.number, "result": outcome.result, "error": outcome.error}
            publishes.append((outcome.entry.topic.rsplit("/", 1)[0] + "/result",
                              json.dumps(answer, ensure_ascii=False).encode(), 1))
        self._link.done(publishes, [(message.mid, message.qos) for message in verified.messages])
        now = _now_ms()
        for message in verified.messages:
            self.metrics.ack_latency.observe((now - message.received_ms) / 1000)

    def _clock_command(self, device: str) -> list[tuple[str, bytes, int]]:
        """The signed time for a device whose clock was never synced, at most once a minute; [] otherwise."""
        now = time.monotonic()
        key = self.store.device_key(device)
        if key is None or now - self._clock_sent.get(device, -_CLOCK_COMMAND_EVERY_S) < _CLOCK_COMMAND_EVERY_S:
            return []
        self._clock_sent[device] = now
        now_ms = _now_ms()
        log.info("sending the time to %s, whose clock was never synced", device)
        return [(f"tc/v1/{device}/cmd", sign_command(key, now_ms, CommandType.TIME, now_ms, issued_ms=now_ms), 1)]

    def _count(self, result: pipeline.CommitResult) -> None:
        self.counts["stored"] += result.stored
        self.counts["duplicates"] += result.duplicates
        self.metrics.events.labels("stored").inc(result.stored)
        self.metrics.events.labels("duplicate").inc(result.duplicates)
        for reason, count in result.quarantined.items():
            self.metrics.rejections.labels(reason).inc(count)
            self.counts[f"rejected_{reason}"] += count
        for outcome in result.tickets:
            self.metrics.tickets.labels(outcome.result).inc()

    def _verify(self, message: _Message, device: str, accepted: list[Accepted], rejected: list[Rejected]) -> None:
        try:
            parts = split_messages(message.payload)
        except ProtocolError as error:
            self._reject(message, device, error, message.payload, rejected)
            return
        for part in parts:
            try:
                event = parse_event(verify_mac0(part, self.store.device_key, topic_device=device))
            except ProtocolError as error:
                self._reject(message, device, error, part, rejected)
                continue
            accepted.append(Accepted(event, part, message.received_ms))

    def _status(self, message: _Message, device: str, statuses: list[tuple[Status, int]],
                rejected: list[Rejected]) -> None:
        if not message.payload:
            return  # a cleared retained status
        try:
            statuses.append((parse_status(device, message.payload), message.received_ms))
        except ProtocolError as error:
            self._reject(message, device, error, message.payload, rejected)

    def _ticket(self, message: _Message, terminal: str, tickets: list[TicketIn], rejected: list[Rejected]) -> None:
        try:
            if len(message.payload) > _MAX_TICKET_BYTES:
                raise TicketError("oversized", f"ticket of {len(message.payload)} bytes, limit {_MAX_TICKET_BYTES}")
            try:
                data = json.loads(message.payload)
            except (ValueError, UnicodeDecodeError) as error:
                raise TicketError("ticket_invalid", f"not JSON: {error}") from None
            ticket = parse_ticket(data, timezone=self.rules.timezone)
            if ticket.terminal != terminal:
                raise TicketError("ticket_invalid", f"ticket of terminal {ticket.terminal!r} on the topic of "
                                  f"{terminal!r}")
        except TicketError as error:
            self.metrics.tickets.labels("refused").inc()
            self._reject(message, "", ProtocolError(error.reason, error.detail), message.payload, rejected)
            return
        tickets.append(TicketIn(ticket, message.topic, message.payload, message.received_ms))

    def _reject(self, message: _Message, device: str, error: ProtocolError, data: bytes,
                rejected: list[Rejected]) -> None:
        log.warning("rejected %s from %s: %s", error.reason, message.topic, error)
        rejected.append(Rejected(message.topic, device, error.reason, str(error), data, message.received_ms))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
