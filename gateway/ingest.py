"""MQTT ingest: receive events, verify, commit in batches, then ack to the device and to the broker.

The broker session is persistent (fixed client id, no clean start, long session
expiry) and PUBACKs are manual: a message is acknowledged to the broker only
after the batch holding it is committed, so a gateway that dies mid-batch gets
it again. Nothing is answered with an MQTT error reason: what cannot be
accepted is quarantined, then acknowledged.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.protocol import MAX_BATCH_BYTES, ProtocolError, encode_ack, parse_event, verify_mac0
from gateway.store import Accepted, Rejected, Store

__all__ = ["IngestSettings", "Ingest", "split_messages"]

log = logging.getLogger("gateway.ingest")
_MAX_BATCH_ITEMS = 64
_SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    client_id: str = "trace-gateway-1"
    """Fixed, so the broker keeps the session (and queues events) while the gateway restarts."""
    username: str = ""
    password: str = ""
    shared_group: str = ""
    """When set, subscribe as $share/<group>/tc/v1/+/ev so several gateways split the load."""
    batch_max: int = 50
    """Messages per commit; keep it below the broker's max_inflight_messages (100 in the shipped config)."""
    batch_wait_ms: int = 20
    """How long a batch waits for more messages after its first."""


@dataclass(frozen=True)
class _Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int


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


def _device_of(topic: str) -> str:
    parts = topic.split("/")
    return parts[2] if len(parts) == 4 and parts[:2] == ["tc", "v1"] and parts[3] == "ev" else ""


class Ingest:
    """Subscribes to every device's ev topic and stores what verifies."""

    def __init__(self, settings: IngestSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.counts: Counter[str] = Counter()
        self.ack_latency_ms: list[float] = []
        self._inbox: queue.Queue[_Message] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                                   protocol=paho.MQTTv5, manual_ack=True)
        if settings.username:
            self._client.username_pw_set(settings.username, settings.password or None)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._work, name="ingest", daemon=True)

    @property
    def subscription(self) -> str:
        topic = "tc/v1/+/ev"
        return f"$share/{self.settings.shared_group}/{topic}" if self.settings.shared_group else topic

    def start(self, timeout_s: float = 10) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = _SESSION_EXPIRY_S
        self._client.connect_async(self.settings.broker_host, self.settings.broker_port, keepalive=30,
                                   clean_start=False, properties=properties)
        self._client.loop_start()
        self._worker.start()
        if not self._connected.wait(timeout_s):
            log.warning("broker %s:%d not reachable yet; retrying in the background",
                        self.settings.broker_host, self.settings.broker_port)

    def stop(self) -> None:
        self._stopping.set()
        self._worker.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the gateway: %s", reason)
            return
        client.subscribe(self.subscription, qos=1)
        self._connected.set()
        log.info("connected to %s:%d, subscribed to %s", self.settings.broker_host, self.settings.broker_port,
                 self.subscription)

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self._inbox.put(_Message(message.mid, message.qos, message.topic, bytes(message.payload), _now_ms()))

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
            while len(batch) < self.settings.batch_max:
                try:
                    batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                self._process(batch)
            except Exception:  # the batch stays unacknowledged; the broker sends it again after a reconnect
                log.exception("batch of %d messages failed; not acknowledged", len(batch))
                self.counts["batch_failures"] += 1
                self._client.reconnect()

    def _process(self, batch: list[_Message]) -> None:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for message in batch:
            self._verify(message, accepted, rejected)
        result = self.store.commit(accepted, rejected)
        self.counts["stored"] += result.stored
        self.counts["duplicates"] += result.duplicates
        self.counts["replays"] += result.replays
        for device, ack in result.acks.items():
            self._client.publish(f"tc/v1/{device}/ack", encode_ack(ack.acked_seq, ack.verdicts), qos=1)
        now = _now_ms()
        for message in batch:
            self._client.ack(message.mid, message.qos)
            self.ack_latency_ms.append(now - message.received_ms)
        del self.ack_latency_ms[:-10000]

    def _verify(self, message: _Message, accepted: list[Accepted], rejected: list[Rejected]) -> None:
        device = _device_of(message.topic)
        try:
            if not device:
                raise ProtocolError("bad_topic", f"topic {message.topic!r} is not tc/v1/<device>/ev")
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
            self.counts["accepted"] += 1

    def _reject(self, message: _Message, device: str, error: ProtocolError, data: bytes,
                rejected: list[Rejected]) -> None:
        self.counts[f"rejected_{error.reason}"] += 1
        log.warning("rejected %s from %s: %s", error.reason, message.topic, error)
        rejected.append(Rejected(message.topic, device, error.reason, str(error), data, message.received_ms))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
