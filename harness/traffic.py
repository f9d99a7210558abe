"""Signed traffic for a gateway under test: sales as the firmware signs them, published QoS 1 by one paho client,
and a watcher of the acks that records when each (device, seq) was covered. The ingest and memory benchmarks,
the gateway-kill soak and the system tests send and count with these."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tcagent.codec import codes, cose, event


def signed_stream(devices: int, count: int, keys: dict[str, bytes],
                  code_of: Callable[[int], str] = lambda number: f"8123456{number:013d}", *, first: int = 0,
                  ) -> list[tuple[str, int, bytes]]:
    """(device, seq, COSE_Mac0) sales round-robin over the devices, each device's seqs from 1; event `number`
    sells the box `code_of(number)` (by default each its own). `first`: where this part of a longer stream starts."""
    stream = []
    for number in range(first, first + count):
        device = f"bench-{number % devices:04d}"
        seq = number // devices + 1
        stream.append((device, seq, signed_sale(device, seq, keys[device], number, code_of(number))))
    return stream


def signed_sale(device: str, seq: int, key: bytes, number: int, code: str) -> bytes:
    """One sale of the box `code` as the firmware signs it (event CBOR in COSE_Mac0); `number` sets its time and
    ticket."""
    payload = event.encode(device, seq, 1, 1767225600000 + number, number, 1, 1, codes.decode(code.encode()), "", 0)
    signed: bytes = cose.sign(cose.MacKey(key), payload, device.encode())
    return signed


Login = tuple[str, str]
"""A broker user name and password; on a broker with users the name is also the client id."""


def mqtt5_client(name: str, login: Login | None = None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", protocol=paho.MQTTv5)
    if login:
        client.username_pw_set(*login)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


def publish_all(port: int, stream: list[tuple[str, int, bytes]], rate: float = 0.0, *,
                login: Login | None = None) -> dict[tuple[str, int], float]:
    """Publish the stream (at `rate` per second, or as fast as possible); when each was handed to paho."""
    client = mqtt5_client("bench-pub", login)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent: dict[tuple[str, int], float] = {}
    infos = []
    started = time.monotonic()
    for index, (device, seq, message) in enumerate(stream):
        if rate:
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
        sent[(device, seq)] = time.monotonic()
        infos.append(client.publish(f"tc/v1/{device}/ev", message, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    client.loop_stop()
    client.disconnect()
    return sent


class AckWatcher:
    """Follows every device's ack topic; records when each (device, seq) was first covered."""

    def __init__(self, port: int, expected: dict[str, int], *, login: Login | None = None) -> None:
        self.expected = expected
        self.acked: dict[str, int] = {}
        self.covered_at: dict[tuple[str, int], float] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._client = mqtt5_client("bench-acks", login)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe("tc/v1/+/ack", qos=1)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        device = message.topic.split("/")[2]
        acked = int(cbor2.loads(message.payload)[1])
        with self._lock:
            for seq in range(self.acked.get(device, 0) + 1, acked + 1):
                self.covered_at[(device, seq)] = now
            self.acked[device] = max(acked, self.acked.get(device, 0))
            if all(self.acked.get(name, 0) >= last for name, last in self.expected.items()):
                self.done.set()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
