"""trace-bench-ingest: the gateway's durable, acknowledged ingest rate next to a bare paho subscriber.

Both runs get the same stream: N events signed by the firmware's own code for D devices, published QoS 1 by
one paho client through a fresh Mosquitto (the shipped configuration) as fast as the broker takes them.

- baseline: a bare paho MQTT 5 subscriber that only counts the messages (no verification, no disk);
- gateway: `trace-gateway run` as its own process; an event counts once the device's ack covers its seq, so
  the figure is events verified, committed to SQLite (synchronous=FULL), acknowledged and answered;
- ack latency: publish -> the ack covering the event, at a steady rate below saturation, p50/p99.

It prints the machine's core count and the ratio gateway / baseline from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tcagent import codes, cose, event
from tools.bench_agent import percentile
from tools.broker import Broker
from tools.gateway_process import GatewayProcess


def signed_stream(devices: int, count: int, keys: dict[str, bytes],
                  code_of: Callable[[int], str] = lambda number: f"8123456{number:013d}",
                  ) -> list[tuple[str, int, bytes]]:
    """(device, seq, COSE_Mac0) sales round-robin over the devices, each device's seqs from 1; event `number`
    sells the box `code_of(number)` (by default each its own)."""
    stream = []
    for number in range(count):
        device = f"bench-{number % devices:04d}"
        seq = number // devices + 1
        scan = codes.decode(code_of(number).encode())
        payload = event.encode(device, seq, 1, 1767225600000 + number, number, 1, 1, scan, "", 0)
        stream.append((device, seq, cose.sign(cose.MacKey(keys[device]), payload, device.encode())))
    return stream


def _client(name: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


def publish_all(port: int, stream: list[tuple[str, int, bytes]], rate: float = 0.0) -> dict[tuple[str, int], float]:
    """Publish the stream (at `rate` per second, or as fast as possible); when each was handed to paho."""
    client = _client("bench-pub")
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


def baseline(folder: Path, stream: list[tuple[str, int, bytes]]) -> float:
    """Messages per second a bare paho subscriber receives."""
    broker = Broker(folder / "baseline-broker")
    broker.start()
    try:
        done = threading.Event()
        received = [0]

        def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            received[0] += 1
            if received[0] == len(stream):
                done.set()

        subscriber = _client("bench-bare")
        subscriber.on_message = on_message
        subscriber.connect("127.0.0.1", broker.port)
        subscriber.subscribe("tc/v1/+/ev", qos=1)
        subscriber.loop_start()
        time.sleep(0.5)
        started = time.monotonic()
        publish_all(broker.port, stream)
        if not done.wait(300):
            raise RuntimeError(f"bare subscriber got {received[0]} of {len(stream)}")
        elapsed = time.monotonic() - started
        subscriber.loop_stop()
        subscriber.disconnect()
        return len(stream) / elapsed
    finally:
        broker.stop()


class AckWatcher:
    """Follows every device's ack topic; records when each (device, seq) was first covered."""

    def __init__(self, port: int, expected: dict[str, int]) -> None:
        self.expected = expected
        self.acked: dict[str, int] = {}
        self.covered_at: dict[tuple[str, int], float] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._client = _client("bench-acks")
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


def gateway_run(folder: Path, stream: list[tuple[str, int, bytes]], keys: dict[str, bytes],
                rate: float = 0.0, *, database: str = "", instances: int = 1) -> tuple[float, list[float]]:
    """(acked events per second, publish -> ack latencies in ms) through real gateway processes: one on its
    SQLite file, or `instances` on the PostgreSQL `database` sharing one subscription."""
    broker = Broker(folder / "broker")
    broker.start()
    gateways = []
    for number in range(instances):
        (folder / f"gateway-{number}").mkdir()
        gateways.append(GatewayProcess(folder / f"gateway-{number}", broker, set_clocks=False, database=database,
                                       shared_group="bench" if instances > 1 else ""))
    try:
        for device, key in keys.items():
            gateways[0].register(device, key)
        for gateway in gateways:
            gateway.start()
        expected: dict[str, int] = {}
        for device, seq, _ in stream:
            expected[device] = max(seq, expected.get(device, 0))
        watcher = AckWatcher(broker.port, expected)
        time.sleep(0.5)
        started = time.monotonic()
        sent = publish_all(broker.port, stream, rate)
        if not watcher.done.wait(600):
            raise RuntimeError(f"acks incomplete: {sum(watcher.acked.values())} of {len(stream)}")
        elapsed = time.monotonic() - started
        watcher.close()
        latencies = [(watcher.covered_at[key] - at) * 1000 for key, at in sent.items()]
        if gateways[0].count(stream[0][0]) != expected[stream[0][0]]:
            raise RuntimeError("the store does not hold what the acks say")
        return len(stream) / elapsed, latencies
    finally:
        for gateway in gateways:
            gateway.stop()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-bench-ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--latency-rate", type=float, default=200.0, help="events/s for the latency run")
    parser.add_argument("--latency-events", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    keys = {f"bench-{number:04d}": os.urandom(32) for number in range(options.devices)}
    stream = signed_stream(options.devices, options.events, keys)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        folder = Path(scratch)
        bare = baseline(folder, stream)
        (folder / "saturated").mkdir()
        durable, _ = gateway_run(folder / "saturated", stream, keys)
        (folder / "steady").mkdir()
        steady = signed_stream(options.devices, options.latency_events, keys)
        _, latencies = gateway_run(folder / "steady", steady, keys, options.latency_rate)
    figures = {
        "cores": os.cpu_count(), "events": options.events, "devices": options.devices,
        "bare_paho_msgs_per_s": round(bare), "gateway_acked_events_per_s": round(durable),
        "ratio": round(durable / bare, 3), "latency_rate": options.latency_rate,
        "ack_latency_p50_ms": round(percentile(latencies, 0.5), 2),
        "ack_latency_p99_ms": round(percentile(latencies, 0.99), 2),
    }
    if options.json:
        print(json.dumps(figures))
    else:
        print(f"cores: {figures['cores']}; {options.events} events from {options.devices} devices, QoS 1")
        print(f"bare paho subscriber:      {figures['bare_paho_msgs_per_s']:>7} msgs/s (baseline)")
        print(f"gateway, durable + acked:  {figures['gateway_acked_events_per_s']:>7} events/s "
              f"(ratio {figures['ratio']})")
        print(f"ack latency at {options.latency_rate:.0f} events/s: p50 {figures['ack_latency_p50_ms']} ms, "
              f"p99 {figures['ack_latency_p99_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
