"""Hostile input over the real path (Mosquitto in, the gateway process, the store out) while a good device keeps
being served: the poison messages an attack found, retained ones among them, and a flood of 20,000 fuzzed
messages. A good event must be acknowledged within a second throughout, and after a restart."""

from __future__ import annotations

import os
import threading
import time

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from soaks.fuzz_ingest import GOOD_DEVICE, HOSTILE_DEVICE, HOSTILE_KEY, POISON, TERMINAL, good_event, hostile_stream

from .fixtures import wait_until

FLOOD_RATE = 2000
"""Hostile messages a second: a flood one compromised device or script can send, below what the gateway takes
(`python -m soaks.fuzz_ingest` and docs/benchmarks.md give its capacity); above capacity MQTT's ordering would
queue the good device behind the flood whatever the gateway does."""


class GoodDevice:
    """Publishes a signed event every `every_s` and times each until the gateway's ack covers it."""

    def __init__(self, port: int, key: bytes, every_s: float = 0.1) -> None:
        self.key = key
        self.every_s = every_s
        self.sent: dict[int, float] = {}
        self.acked: dict[int, float] = {}
        self._seq = 0
        self._stop = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"good-{os.getpid()}")
        self._client.on_message = self._on_ack
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"tc/v1/{GOOD_DEVICE}/ack", qos=1)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_ack(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        acked_seq = cbor2.loads(message.payload)[1]
        for seq in list(self.sent):
            if seq <= acked_seq and seq not in self.acked:
                self.acked[seq] = now

    def send(self, count: int) -> None:
        for _ in range(count):
            self._seq += 1
            self.sent[self._seq] = time.monotonic()
            self._client.publish(f"tc/v1/{GOOD_DEVICE}/ev", good_event(self.key, self._seq), qos=1)
            time.sleep(self.every_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send(1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def latencies(self) -> list[float]:
        """Seconds from publish to ack per event; an event never acked counts as infinite."""
        return [self.acked.get(seq, float("inf")) - sent for seq, sent in self.sent.items()]


def _publisher(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{os.getpid()}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish(client: paho.Client, stream: list[tuple[str, bytes]], *, retain_statuses: bool = False,
             rate: float = 0.0) -> None:
    """Publish QoS 1 (statuses retained if asked), at `rate` messages a second or as fast as paho goes."""
    infos = []
    started = time.monotonic()
    for index, (topic, payload) in enumerate(stream):
        if rate and index % 50 == 0:
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
        infos.append(client.publish(topic, payload, qos=1, retain=retain_statuses and topic.endswith("/status")))
    for info in infos:
        info.wait_for_publish(120)


def _metric(gateway, name: str) -> float:
    status, text = gateway.api("GET", "/metrics")
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in str(text).splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _start(gateway):
    good_key = os.urandom(32)
    gateway.register(GOOD_DEVICE, good_key, terminal=TERMINAL)
    gateway.register(HOSTILE_DEVICE, HOSTILE_KEY, terminal=TERMINAL)
    gateway.start()
    return good_key


def test_each_poison_message_is_quarantined_and_nobody_else_stops(gateway, broker):
    good = GoodDevice(broker.port, _start(gateway))
    hostile = _publisher(broker.port)
    try:
        for _, topic, payload, _ in POISON:
            _publish(hostile, [(topic, payload)], retain_statuses=True)  # a retained status comes back each time
            good.send(2)
        assert wait_until(lambda: len(good.acked) == len(good.sent), 10), (good.sent, good.acked)
        expected = {reason for *_, reason in POISON}
        assert wait_until(lambda: {row[0] for row in gateway.quarantine()} >= expected, 10), gateway.quarantine()
        assert _metric(gateway, "tracegw_batch_failures_total") == 0
        status, page = gateway.api("GET", "/api/v1/quarantine?limit=100")  # every refused message shown, none a 500
        assert status == 200 and "" in {row["message_hex"] for row in page["messages"]}, page
        gateway.stop()
        gateway.start()  # the retained poison status is handed over again on subscribing
        before = len(good.sent)
        good.send(10)
        assert wait_until(lambda: len(good.acked) == before + 10, 10)
        assert max(good.latencies()) < 1.0, sorted(good.latencies())[-5:]
        assert _metric(gateway, "tracegw_batch_failures_total") == 0
    finally:
        hostile.loop_stop()
        good.close()


def test_twenty_thousand_fuzzed_messages_while_a_good_device_is_acknowledged_within_a_second(gateway, broker):
    stream = hostile_stream(20_000, seed=1129)
    good = GoodDevice(broker.port, _start(gateway))
    hostile = _publisher(broker.port)
    try:
        good.start()
        started = time.monotonic()
        _publish(hostile, stream, retain_statuses=True, rate=FLOOD_RATE)
        flood_s = time.monotonic() - started
        time.sleep(1)
        good.stop()
        assert wait_until(lambda: len(good.acked) == len(good.sent), 10)
        latencies = good.latencies()
        assert len(latencies) >= 10 and max(latencies) < 1.0, sorted(latencies)[-5:]
        # every hostile message was taken and answered for: counted by kind, none left to the broker
        assert wait_until(lambda: _metric(gateway, "tracegw_ingest_messages_total") == len(stream) + len(good.sent),
                          30), (_metric(gateway, "tracegw_ingest_messages_total"), len(stream) + len(good.sent))
        assert _metric(gateway, "tracegw_batch_failures_total") == 0
        print(f"{len(stream)} hostile messages in {flood_s:.1f} s; good events {len(latencies)}, ack latency max "
              f"{max(latencies) * 1000:.0f} ms")
        gateway.stop()
        gateway.start()
        before = len(good.sent)
        good.send(10)
        assert wait_until(lambda: len(good.acked) == before + 10, 10)
        assert max(good.latencies()[before:]) < 1.0
    finally:
        hostile.loop_stop()
        good.close()
