"""trace-bench-ingest: the gateway's durable, acknowledged ingest rate next to a bare paho subscriber.

Every run gets the same kind of stream: events signed by the firmware's own code for D devices, published QoS 1
by one paho client through a fresh Mosquitto (the shipped configuration).

- baseline: a bare paho MQTT 5 subscriber that only counts the messages (no verification, no disk), fed as fast
  as the broker takes them;
- saturated, live: `trace-gateway run` as its own process, fed as fast as possible while it runs; an event
  counts once the device's ack covers its seq, so the figure is events verified, committed (SQLite
  synchronous=FULL, or PostgreSQL with fsync and synchronous_commit on), acknowledged and answered; on
  PostgreSQL also N instances on one shared subscription, against one;
- saturated, backlog: the same stream queued by the broker while the gateway (or the bare subscriber) was away,
  then taken from its first message to its last: the publisher no longer shares the CPU;
- load: publish -> ack latency (p50/p99) and the acked rate at steady offered loads, e.g. 100 and 1,000/s;
  `--plot` draws throughput and latency against offered load.

It prints the machine's core count and the ratios from the same run.
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
from typing import Any

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tcagent.codec import codes, cose, event
from tools.bench_agent import percentile
from tools.broker import Broker
from tools.gateway_process import GatewayProcess
from tools.progress import Progress


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


def _client(name: str, login: Login | None = None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", protocol=paho.MQTTv5)
    if login:
        client.username_pw_set(*login)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


def publish_all(port: int, stream: list[tuple[str, int, bytes]], rate: float = 0.0, *,
                login: Login | None = None) -> dict[tuple[str, int], float]:
    """Publish the stream (at `rate` per second, or as fast as possible); when each was handed to paho."""
    client = _client("bench-pub", login)
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


def baseline(folder: Path, stream: list[tuple[str, int, bytes]], *, backlog: bool = False) -> float:
    """Messages per second a bare paho subscriber receives: while they are published, or (`backlog`) from a
    backlog the broker queued for its session while it was away, from its first message to its last."""
    broker = Broker(folder / ("backlog-broker" if backlog else "baseline-broker"))
    broker.start()
    try:
        done = threading.Event()
        received: list[float] = []

        def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            received.append(time.monotonic())
            if len(received) == len(stream):
                done.set()

        subscriber = _client("bench-bare")
        subscriber.on_message = on_message
        _connect_persistent(subscriber, broker.port)
        subscriber.subscribe("tc/v1/+/ev", qos=1)
        subscriber.loop_start()
        time.sleep(0.5)
        if backlog:
            subscriber.disconnect()
            subscriber.loop_stop()
            publish_all(broker.port, stream)
            _connect_persistent(subscriber, broker.port)
            subscriber.loop_start()
        started = time.monotonic()
        if not backlog:
            publish_all(broker.port, stream)
        if not done.wait(300):
            raise RuntimeError(f"bare subscriber got {len(received)} of {len(stream)}")
        subscriber.loop_stop()
        subscriber.disconnect()
        if backlog:
            return (len(stream) - 1) / (received[-1] - received[0])
        return len(stream) / (time.monotonic() - started)
    finally:
        broker.stop()


def _connect_persistent(client: paho.Client, port: int) -> None:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)


class AckWatcher:
    """Follows every device's ack topic; records when each (device, seq) was first covered."""

    def __init__(self, port: int, expected: dict[str, int], *, login: Login | None = None) -> None:
        self.expected = expected
        self.acked: dict[str, int] = {}
        self.covered_at: dict[tuple[str, int], float] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._client = _client("bench-acks", login)
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
                rate: float = 0.0, *, database: str = "", instances: int = 1,
                backlog: bool = False) -> tuple[float, list[float]]:
    """(acked events per second, publish -> ack latencies in ms) through real gateway processes: one on its
    SQLite file, or `instances` on the PostgreSQL `database` sharing one subscription. `backlog`: the stream is
    published while the gateways are stopped (the broker queues it for their sessions), and the rate runs from
    the first ack to the last, so the publisher does not share the CPU with the measurement."""
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
        if backlog:
            for gateway in gateways:
                gateway.stop()
            sent = publish_all(broker.port, stream)
            for gateway in gateways:
                gateway.start()
        if not backlog:
            sent = publish_all(broker.port, stream, rate)
        if not watcher.done.wait(600):
            raise RuntimeError(f"acks incomplete: {sum(watcher.acked.values())} of {len(stream)}")
        watcher.close()
        latencies = [(watcher.covered_at[key] - at) * 1000 for key, at in sent.items()]
        if gateways[0].count(stream[0][0]) != expected[stream[0][0]]:
            raise RuntimeError("the store does not hold what the acks say")
        if backlog:
            first = min(watcher.covered_at.values())
            later = sum(1 for at in watcher.covered_at.values() if at > first)
            return later / (max(watcher.covered_at.values()) - first), latencies
        return len(stream) / (max(watcher.covered_at.values()) - min(sent.values())), latencies
    finally:
        for gateway in gateways:
            gateway.stop()
        broker.stop()


def _store_run(folder: Path, stream: list[tuple[str, int, bytes]], keys: dict[str, bytes], store: str,
               rate: float = 0.0, instances: int = 1, backlog: bool = False) -> tuple[float, list[float]]:
    """One gateway_run on a fresh SQLite file, or on a fresh durable PostgreSQL cluster."""
    folder.mkdir(parents=True)
    if store == "sqlite":
        return gateway_run(folder, stream, keys, rate, backlog=backlog)
    from tools.pg_cluster import PgCluster

    with PgCluster(durable=True) as cluster:
        return gateway_run(folder, stream, keys, rate, database=cluster.create_database("bench"),
                           instances=instances, backlog=backlog)


def measure(folder: Path, options: argparse.Namespace) -> dict[str, Any]:
    progress = Progress("trace-bench-ingest")
    progress.phase(f"signing {options.events} events of {options.devices} devices")
    keys = {f"bench-{number:04d}": os.urandom(32) for number in range(options.devices)}
    stream = signed_stream(options.devices, options.events, keys)
    progress.phase("baseline: a bare paho subscriber, live and from a backlog")
    bare = {"live": baseline(folder, stream), "backlog": baseline(folder, stream, backlog=True)}
    runs: list[dict[str, Any]] = []
    for store in options.stores.split(","):
        for mode in ("live", "backlog"):
            for instances in ([1] if store == "sqlite" else sorted({1, options.instances})):
                progress.phase(f"{store}, {mode}, {instances} gateway instance(s): saturated")
                rate, _ = _store_run(folder / f"{store}-{mode}-x{instances}", stream, keys, store,
                                     instances=instances, backlog=mode == "backlog")
                runs.append({"store": store, "mode": mode, "instances": instances, "offered": 0,
                             "events": len(stream), "acked_per_s": round(rate),
                             "ratio_to_bare": round(rate / bare[mode], 3)})
        for offered in sorted(options.loads):
            progress.phase(f"{store}, live, offered {offered:g} events/s for {options.load_seconds} s")
            steady = signed_stream(options.devices, max(200, int(offered * options.load_seconds)), keys)
            rate, latencies = _store_run(folder / f"{store}-at-{offered:g}", steady, keys, store, offered)
            runs.append({"store": store, "mode": "live", "instances": 1, "offered": offered, "events": len(steady),
                         "acked_per_s": round(rate), "p50_ms": round(percentile(latencies, 0.5), 2),
                         "p99_ms": round(percentile(latencies, 0.99), 2)})
    return {"cores": os.cpu_count(), "events": options.events, "devices": options.devices,
            "bare_paho_msgs_per_s": round(bare["live"]), "bare_paho_backlog_msgs_per_s": round(bare["backlog"]),
            "runs": runs}


def plot(figures: dict[str, Any], path: Path) -> None:
    """Acked rate and p50/p99 latency against offered load, one colour per store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rates, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for store, colour in (("sqlite", "tab:blue"), ("postgresql", "tab:orange")):
        points = [run for run in figures["runs"] if run["store"] == store and run["offered"]]
        if not points:
            continue
        offered = [run["offered"] for run in points]
        rates.plot(offered, [run["acked_per_s"] for run in points], "o-", color=colour, label=store)
        latency.plot(offered, [run["p50_ms"] for run in points], "o--", color=colour, label=f"{store} p50")
        latency.plot(offered, [run["p99_ms"] for run in points], "o-", color=colour, label=f"{store} p99")
        saturated = [run["acked_per_s"] for run in figures["runs"] if run["store"] == store and not run["offered"]
                     and run["instances"] == 1 and run["mode"] == "live"]
        if saturated:
            rates.axhline(saturated[0], color=colour, linestyle=":", label=f"{store}, saturated")
    top = max(run["offered"] for run in figures["runs"]) or 1
    rates.plot([0, top], [0, top], color="grey", linewidth=0.8, label="offered = acked")
    rates.axhline(figures["bare_paho_msgs_per_s"], color="black", linestyle=":", label="bare paho subscriber")
    rates.set(xlabel="offered load (events/s)", ylabel="acked events/s", title="durable, acknowledged ingest")
    latency.set(xlabel="offered load (events/s)", ylabel="publish -> ack (ms)", yscale="log",
                title="scan -> ack latency")
    latency.axhline(100, color="red", linewidth=0.8, label="100 ms")
    for axes in (rates, latency):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(f"trace-bench-ingest, {figures['cores']} cores, {figures['devices']} devices, QoS 1", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _report(figures: dict[str, Any]) -> None:
    print(f"cores: {figures['cores']}; {figures['events']} events from {figures['devices']} devices, QoS 1")
    print(f"bare paho subscriber: {figures['bare_paho_msgs_per_s']} msgs/s while published (baseline of live), "
          f"{figures['bare_paho_backlog_msgs_per_s']} msgs/s from a queued backlog (baseline of backlog)")
    print(f"{'store':<11}{'mode':<9}{'instances':>9}{'offered/s':>11}{'acked/s':>9}{'ratio':>8}{'p50 ms':>9}"
          f"{'p99 ms':>9}")
    for run in figures["runs"]:
        print(f"{run['store']:<11}{run['mode']:<9}{run['instances']:>9}{run['offered'] or 'max':>11}"
              f"{run['acked_per_s']:>9}{run.get('ratio_to_bare', ''):>8}{run.get('p50_ms', ''):>9}"
              f"{run.get('p99_ms', ''):>9}")
    for mode in ("live", "backlog"):
        saturated = {run["instances"]: run["acked_per_s"] for run in figures["runs"]
                     if run["store"] == "postgresql" and not run["offered"] and run["mode"] == mode}
        if len(saturated) > 1:
            many = max(saturated)
            print(f"postgresql, {mode}: {many} instances / 1 instance = {saturated[many] / saturated[1]:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-bench-ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events of the saturated runs")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgresql or sqlite,postgresql")
    parser.add_argument("--instances", type=int, default=2, help="PostgreSQL: also this many instances")
    parser.add_argument("--loads", type=lambda text: [float(part) for part in text.split(",") if part],
                        default=[100.0, 1000.0], help="offered loads for the latency runs, events/s")
    parser.add_argument("--load-seconds", type=float, default=5.0, help="length of each latency run")
    parser.add_argument("--plot", type=Path, help="write throughput and latency against offered load (PNG)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        figures = measure(Path(scratch), options)
    if options.plot:
        plot(figures, options.plot)
    if options.json:
        print(json.dumps(figures))
    else:
        _report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
