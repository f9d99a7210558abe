"""MQTT ingest: receive events, verify, commit in batches, then ack to the device and to the broker.

The broker session is persistent (fixed client id, no clean start, long session
expiry) and PUBACKs are manual: a message is acknowledged to the broker only
after the batch holding it is committed, so a gateway that dies mid-batch gets
it again. Nothing is answered with an MQTT error reason: what cannot be
accepted is quarantined, then acknowledged.

The MQTT session runs in a child process (gateway/ingest/mqtt_link.py). Here two
threads: one verifies a batch (MACs, schemas) while the other commits the batch
before it, so the verification overlaps SQLite's or PostgreSQL's own work
(which runs without the GIL). The verifier stays at most one batch ahead.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.domain import pipeline
from gateway.domain.pipeline import Accepted, AnswerIn, TicketIn
from gateway.domain.quarantine import Bounds, Rejected
from gateway.errors import GatewayError
from gateway.ingest.mqtt_link import LinkSettings, MqttChild, Received
from gateway.metrics import Metrics
from gateway.rules import Rules
from gateway.settings import IngestSettings
from gateway.store.base import Store, StoreError
from gateway.wire import topics
from gateway.wire.commands import MAX_ANSWER_BYTES, CommandType, parse_answer, sign_command
from gateway.wire.messages import split_messages
from gateway.wire.protocol import ProtocolError, encode_ack, parse_event, shown, verify_mac0
from gateway.wire.status import Status, parse_status
from gateway.wire.ticket import TicketError, parse_ticket
from gateway.wire.topics import TOPICS, route

__all__ = ["Ingest", "Admission", "Message", "Sorted", "StoreTrouble"]

log = logging.getLogger("gateway.ingest")
_MAX_TICKET_BYTES = 65536
_CLOCK_COMMAND_EVERY_S = 60.0
_LEAF_RETRY_S = 0.2
_STORE_TROUBLE_PAUSE_S = 0.5


class Message(NamedTuple):
    """One MQTT message as received from the link."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int


@dataclass(slots=True)
class Sorted:
    """One message sorted into what the commit takes: its events, its refusals, a status or a ticket."""

    message: Message
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    statuses: list[tuple[Status, int]] = field(default_factory=list)
    tickets: list[TicketIn] = field(default_factory=list)
    answers: list[AnswerIn] = field(default_factory=list)


Publish = tuple[str, bytes, int]
"""(topic, payload, qos) of a message the gateway sends."""
Done = Callable[[list[Publish], list[tuple[int, int]]], None]
"""After a commit: publish these, then acknowledge these (mid, qos) to the broker."""


class StoreTrouble(GatewayError):
    """The database, not a message, failed: nothing of the batch is acknowledged and the broker sends it again."""

    kind = "unusable"


class Admission:
    """Verification and commit of batches, each message on its own: no message can stop the others.

    Any exception while one message is decoded or verified sends that message to quarantine ("undecodable",
    with the exception's type) and the rest go on. A commit that fails is split in halves until the message
    that makes it fail is found: that one is quarantined ("commit_failed") and acknowledged, the rest commit.
    Only when the store itself fails (a quarantine commit fails too) is nothing acknowledged: StoreTrouble.
    Independent of MQTT, so the fuzz harness drives exactly this.
    """

    def __init__(self, settings: IngestSettings, store: Store, rules: Rules, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self.bounds = Bounds(rows=settings.quarantine_max_rows, bytes=settings.quarantine_max_bytes)
        self._clock_sent: dict[str, float] = {}
        self._log_quota = _LogQuota()
        self._quarantined_unchecked = 0
        """Messages quarantined since the quarantine's bounds were last checked (a check reads the whole table,
        so it runs once per 1 % of the row bound, or once a second while messages keep being refused)."""
        self._bounds_checked = 0.0

    def sort(self, batch: list[Message]) -> list[Sorted]:
        """Each message verified and sorted; StoreTrouble when a device key cannot be read."""
        kinds: Counter[str] = Counter()
        result = []
        for message in batch:
            kind, name = route(message.topic)
            kinds[kind or "other"] += 1
            result.append(self._sort_one(message, kind, name))
        for kind, count in kinds.items():
            self.metrics.messages.labels(kind).inc(count)
        return result

    def _sort_one(self, message: Message, kind: str, name: str) -> Sorted:
        item = Sorted(message)
        try:
            if kind == "ev":
                self._verify(message, name, item)
            elif kind == "status":
                self._status(message, name, item)
            elif kind == "ticket":
                self._ticket(message, name, item)
            elif kind == "res":
                self._answer(message, name, item)
            else:
                raise ProtocolError("bad_topic", f"topic {shown(message.topic)} is not ours")
        except StoreTrouble:
            raise
        except (ProtocolError, TicketError) as error:
            self._reject(message, name if kind in topics.DEVICE_KINDS else "", error, message.payload, item)
        except Exception as error:  # a surprise of a decoder or parser: this message only
            item = Sorted(message)
            self._reject(message, name if kind in topics.DEVICE_KINDS else "",
                         ProtocolError("undecodable", f"{type(error).__name__}: {shown(error)}"), message.payload, item)
        return item

    def commit(self, batch: list[Sorted], done: Done) -> None:
        """Commit the batch, or the parts of it that can be, quarantining the message that fails; `done` after
        each commit. StoreTrouble when the store fails: what was not yet done is not acknowledged."""
        try:
            self._commit(batch, done)
            return
        except Exception as error:
            failure = error
        if len(batch) > 1:
            middle = len(batch) // 2
            self.commit(batch[:middle], done)
            self.commit(batch[middle:], done)
            return
        if _store_fault(failure):  # a passing failure of the database is not the message's fault: once more alone
            time.sleep(_LEAF_RETRY_S)
            try:
                self._commit(batch, done)
                return
            except Exception as error:
                failure = error
        message = batch[0].message
        refusal = Rejected(message.topic, route(message.topic)[1], "commit_failed",
                           f"{type(failure).__name__}: {shown(failure, 300)}", message.payload, message.received_ms)
        self._log_quota.warning("commit_failed", "a message on %s fails its commit (%s); quarantined",
                                shown(message.topic), refusal.detail)
        try:
            self._commit([Sorted(message, rejected=[refusal])], done)
        except Exception as error:
            raise StoreTrouble(f"the store fails even to quarantine: {type(error).__name__}: {error}") from error

    def _commit(self, batch: list[Sorted], done: Done) -> None:
        started = time.perf_counter()
        check = self._quarantined_unchecked >= max(1, self.bounds.rows // 100) or (
            self._quarantined_unchecked and started - self._bounds_checked >= 1.0)
        result = pipeline.commit(self.store, self.rules, accepted=[a for item in batch for a in item.accepted],
                                 rejected=[r for item in batch for r in item.rejected],
                                 statuses=[s for item in batch for s in item.statuses],
                                 tickets_in=[t for item in batch for t in item.tickets],
                                 answers=[a for item in batch for a in item.answers],
                                 instance=self.settings.client_id, bounds=self.bounds if check else None)
        self.metrics.commit_duration.observe(time.perf_counter() - started)
        if check:
            self._quarantined_unchecked, self._bounds_checked = 0, started
        self._quarantined_unchecked += sum(result.quarantined.values())
        self._count(result)
        publishes = [(topics.ack(device), encode_ack(ack.acked_seq, ack.verdicts), 1)
                     for device, ack in result.acks.items()]
        for item in batch:
            for status, _ in item.statuses:
                if status.online and status.clock == 0 and self.settings.set_clocks:
                    publishes += self._clock_command(status.device)
        for outcome in result.tickets:
            answer = {"number": outcome.entry.ticket.number, "result": outcome.result, "error": outcome.error}
            publishes.append((outcome.entry.topic.rsplit("/", 1)[0] + "/result",
                              json.dumps(answer, ensure_ascii=False).encode(), 1))
        done(publishes, [(item.message.mid, item.message.qos) for item in batch])
        now = _now_ms()
        for item in batch:
            self.metrics.ack_latency.observe((now - item.message.received_ms) / 1000)

    def _clock_command(self, device: str) -> list[Publish]:
        """The signed time for a device whose clock was never synced, at most once a minute; [] otherwise."""
        now = time.monotonic()
        key = self.store.device_key(device)
        if key is None or now - self._clock_sent.get(device, -_CLOCK_COMMAND_EVERY_S) < _CLOCK_COMMAND_EVERY_S:
            return []
        self._clock_sent[device] = now
        now_ms = _now_ms()
        log.info("sending the time to %s, whose clock was never synced", device)
        return [(topics.command(device), sign_command(key, now_ms, CommandType.TIME, now_ms, issued_ms=now_ms), 1)]

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
        self.counts["answers_recorded"] += result.answers_recorded
        self.counts["answers_unmatched"] += result.answers_unmatched

    def _key(self, device: str) -> bytes | None:
        try:
            return self.store.device_key(device)
        except Exception as error:
            raise StoreTrouble(f"reading the key of {device!r}: {type(error).__name__}: {error}") from error

    def _verify(self, message: Message, device: str, item: Sorted) -> None:
        parts = split_messages(message.payload)
        for part in parts:  # each message of a batch stands alone: a bad one is refused, the others go on
            try:
                event = parse_event(verify_mac0(part, self._key, topic_device=device))
            except ProtocolError as error:
                self._reject(message, device, error, part, item)
                continue
            item.accepted.append(Accepted(event, part, message.received_ms))

    def _status(self, message: Message, device: str, item: Sorted) -> None:
        if not message.payload:
            return  # a cleared retained status
        item.statuses.append((parse_status(device, message.payload), message.received_ms))

    def _answer(self, message: Message, device: str, item: Sorted) -> None:
        """A device's signed answer to a command (gateway/domain/control.py keeps it with the command)."""
        if len(message.payload) > MAX_ANSWER_BYTES:
            raise ProtocolError("oversized", f"answer of {len(message.payload)} bytes, limit {MAX_ANSWER_BYTES}")
        answer = parse_answer(verify_mac0(message.payload, self._key, topic_device=device))
        item.answers.append(AnswerIn(answer, message.payload, message.received_ms))

    def _ticket(self, message: Message, terminal: str, item: Sorted) -> None:
        if len(message.payload) > _MAX_TICKET_BYTES:
            raise TicketError("oversized", f"ticket of {len(message.payload)} bytes, limit {_MAX_TICKET_BYTES}")
        try:
            data = json.loads(message.payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise TicketError("ticket_invalid", f"not JSON: {type(error).__name__}: {shown(error)}") from None
        ticket = parse_ticket(data, timezone=self.rules.timezone)
        if ticket.terminal != terminal:
            raise TicketError("ticket_invalid", f"ticket of terminal {shown(ticket.terminal)} on the topic of "
                              f"{shown(terminal)}")
        item.tickets.append(TicketIn(ticket, message.topic, message.payload, message.received_ms))

    def _reject(self, message: Message, device: str, error: ProtocolError | TicketError, data: bytes,
                item: Sorted) -> None:
        """The one place a message refused before the store (its topic, MAC, shape, a ticket's fields) becomes a
        counted, logged (within a quota) and quarantined rejection. What only the store can judge (a replay, a seq
        outside the window, the status of an unregistered device, a ticket in conflict) the pipeline quarantines in
        the batch's own transaction (gateway/domain/pipeline.py)."""
        if isinstance(error, TicketError):
            self.metrics.tickets.labels("refused").inc()
        self._log_quota.warning(error.reason, "rejected %s from %s: %s", error.reason, shown(message.topic), error)
        item.rejected.append(Rejected(message.topic, device, error.reason, str(error), data, message.received_ms))


class _LogQuota:
    """At most a few log lines per reason every 10 s, then one line saying how many were not logged: a flood
    of bad messages must not become a flood of log lines (every one is still counted in the metrics)."""

    _PER_WINDOW = 5
    _WINDOW_S = 10.0

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    def warning(self, reason: str, text: str, *args: object) -> None:
        now = time.monotonic()
        started, logged = self._windows.get(reason, (now, 0))
        if now - started >= self._WINDOW_S:
            if logged > self._PER_WINDOW:
                log.warning("%d more %s rejections in the last %.0f s (not logged one by one)",
                            logged - self._PER_WINDOW, reason, now - started)
            started, logged = now, 0
        self._windows[reason] = (started, logged + 1)
        if logged < self._PER_WINDOW:
            log.warning(text, *args)


class Ingest:
    """Subscribes to events, statuses and tickets, and commits what it can accept, batch by batch."""

    def __init__(self, settings: IngestSettings, store: Store, rules: Rules, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.admission = Admission(settings, store, rules, metrics)
        self._inbox: queue.SimpleQueue[list[Message]] = queue.SimpleQueue()
        self._carried: list[Message] = []
        self._sorted: queue.Queue[list[Sorted]] = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self._link = MqttChild(LinkSettings(settings.broker_host, settings.broker_port, settings.client_id,
                                       settings.username, settings.password, tuple(self.subscriptions),
                                       logging.getLogger().getEffectiveLevel()), self._take)
        self._threads = [threading.Thread(target=self._verify_batches, name="ingest-verify", daemon=True),
                         threading.Thread(target=self._commit_batches, name="ingest-commit", daemon=True)]

    @property
    def counts(self) -> Counter[str]:
        return self.admission.counts

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

    def publish(self, publishes: list[Publish]) -> None:
        """Publish these (topic, payload, qos) through the link (device commands from
        gateway/ingest/command_sender.py)."""
        self._link.done(publishes, [])

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._link.stop()

    def _take(self, batch: list[Received]) -> None:
        self._inbox.put([Message(*item) for item in batch])

    def _next_batch(self) -> list[Message]:
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
                verified = self.admission.sort(batch)
            except StoreTrouble as error:
                self._failed(len(batch), error)
                continue
            while not self._stopping.is_set():
                try:
                    self._sorted.put(verified, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _commit_batches(self) -> None:
        while not self._stopping.is_set():
            try:
                verified = self._sorted.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.admission.commit(verified, self._link.done)
            except StoreTrouble as error:
                self._failed(len(verified), error)

    def _failed(self, size: int, error: StoreTrouble) -> None:
        """The store failed: the batch stays unacknowledged and the broker sends it again after a reconnect
        (after a pause, so a database that is down is not asked again forty times a second)."""
        log.error("batch of %d messages not acknowledged: %s", size, error)
        self.metrics.batch_failures.inc()
        self.counts["batch_failures"] += 1
        time.sleep(_STORE_TROUBLE_PAUSE_S)
        self._link.reconnect()


def _store_fault(error: Exception) -> bool:
    """Whether the database's own state (locked, disk, connection), not the data, made a commit fail: both
    drivers call that an OperationalError."""
    return type(error).__name__ == "OperationalError" or isinstance(error, StoreError)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
