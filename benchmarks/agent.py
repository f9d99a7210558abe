"""python -m benchmarks.agent: the scanner agent's figures on this machine, each next to a baseline from the same run.

- scan -> journal ("taken") and scan -> gateway verdict latency at a steady rate, p50/p99, against a control
  barcode that crosses the same pty and framer but no decoder, CBOR, MAC or flash write;
- drain rate of a prefilled backlog into the real gateway, against a bare paho subscriber counting the
  same number of equal-sized messages published by paho;
- heap: the least free heap reported while draining, with the heap capped as on a board;
- flash: bytes littlefs programs per journalled event, and µs per scan through decode, CBOR, MAC and the
  journal append with its sync (firmware/bench_flash.py on micropython, littlefs on a RAM block device).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from harness.broker import MqttBroker
from harness.gateway_process import running_system
from harness.progress import Progress
from harness.virtual_device import VirtualDevice, prefill_journal
from tools.paths import FIRMWARE, micropython, micropython_env

VERDICT_SIGNALS = "ok|duplicate|invalid|unknown_product|mismatch|rejected"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def steady_latency(device: VirtualDevice, rate: float, count: int) -> dict[str, list[float]]:
    """Milliseconds from the write on the pty to the taken line and to the verdict line, per scan."""
    taken, verdict, control = [], [], []
    for number in range(count):
        start_index = len(device.lines)
        sent = time.monotonic()
        device.scan(f"TC:TKT:B{number}")
        control.append((device.when(r"^signal control ticket=", start=start_index) - sent) * 1000)
        start_index = len(device.lines)
        sent = time.monotonic()
        device.scan(f"8765432{number:013d}")
        match = device.wait_for(r"^signal taken seq=(\d+)$", start=start_index)
        taken.append((device.when(r"^signal taken", start=start_index) - sent) * 1000)
        verdict_line = rf"^signal ({VERDICT_SIGNALS}) seq={match.group(1)}$"
        verdict.append((device.when(verdict_line, start=start_index, timeout=30) - sent) * 1000)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - sent)))
    return {"taken": taken, "verdict": verdict, "control": control}


def bare_paho_rate(broker: MqttBroker, count: int, size: int) -> float:
    """Messages/s a bare paho subscriber receives at QoS 1 from a paho publisher: the broker's own pace."""
    received = threading.Event()
    got = [0]

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        got[0] += 1
        if got[0] == count:
            received.set()

    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")
    subscriber.on_message = on_message
    subscriber.connect("127.0.0.1", broker.port)
    subscriber.subscribe("bench/#", qos=1)
    subscriber.loop_start()
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    publisher.max_queued_messages_set(0)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    time.sleep(0.5)
    payload = os.urandom(size)
    started = time.monotonic()
    for _ in range(count):
        publisher.publish("bench/x", payload, qos=1)
    received.wait(120)
    elapsed = time.monotonic() - started
    for client in (publisher, subscriber):
        client.loop_stop()
        client.disconnect()
    return count / elapsed


def flash_figures() -> dict[str, Any]:
    result = subprocess.run([micropython(), str(FIRMWARE / "bench_flash.py")], env=micropython_env(FIRMWARE),
                            capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5, help="scans per second for the latency run (default 5)")
    parser.add_argument("--scans", type=int, default=100, help="scans in the latency run (default 100)")
    parser.add_argument("--backlog", type=int, default=10_000, help="events to drain (default 10000)")
    parser.add_argument("--heap", default="144K", help="micropython heap while draining (default 144K)")
    options = parser.parse_args(argv)
    key = os.urandom(32)
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as scratch, \
            running_system(Path(scratch), {"bench-1": key, "bench-2": key}) as (broker, gateway):
        folder = Path(scratch)
        base = {"key_hex": key.hex(), "broker_host": "127.0.0.1", "broker_port": broker.port,
                "status_interval_s": 1, "debounce_ms": 0}
        progress = Progress("python -m benchmarks.agent")
        progress.phase(f"{options.scans} scans at {options.rate}/s through the agent")
        with VirtualDevice(folder / "bench-1", {**base, "device_id": "bench-1"}) as device:
            device.wait_for(r"^signal online", timeout=20)
            latency = steady_latency(device, options.rate, options.scans)
        gateway.stop()
        progress.phase(f"writing a backlog of {options.backlog} events into a journal")
        prefill_journal(folder / "bench-2" / "data", "bench-2", key, options.backlog)
        gateway.start()
        statuses: list[dict[int, Any]] = []
        watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-status")
        watcher.on_message = lambda client, userdata, message: statuses.append(cbor2.loads(message.payload))
        watcher.connect("127.0.0.1", broker.port)
        watcher.subscribe("tc/v1/bench-2/status", qos=1)
        watcher.loop_start()
        drainer = VirtualDevice(folder / "bench-2", {**base, "device_id": "bench-2",
                                                     "journal_capacity": 4 * 1024 * 1024},
                                heap=options.heap, compiled=True)
        progress.phase(f"draining it into the gateway with the heap capped at {options.heap}")
        started = time.monotonic()
        drainer.start()
        while (stored := gateway.count("bench-2")) < options.backlog and time.monotonic() - started < 600:
            progress.tick(f"{stored} of {options.backlog} stored")
            time.sleep(0.2)
        drain_s = time.monotonic() - started
        drainer.stop()
        watcher.loop_stop()
        watcher.disconnect()
        progress.phase(f"baseline: {options.backlog} messages from a bare paho publisher to a subscriber")
        bare = bare_paho_rate(broker, options.backlog, 250)
    flash = flash_figures()
    heap_bytes = int(options.heap.rstrip("Kk")) * 1024
    least_free = min((s[5] for s in statuses if 5 in s), default=0)
    print(f"machine: {os.cpu_count()} cores; micropython unix port; rate {options.rate}/s, {options.scans} scans")
    print(f"{'':34}{'p50 ms':>10}{'p99 ms':>10}")
    for name, label in (("control", "control barcode (baseline)"), ("taken", "scan -> taken (on flash)"),
                        ("verdict", "scan -> gateway verdict")):
        values = latency[name]
        print(f"{label:34}{percentile(values, 0.5):>10.2f}{percentile(values, 0.99):>10.2f}")
    ratio = statistics.median(latency["taken"]) / statistics.median(latency["control"])
    print(f"taken/baseline p50 ratio: {ratio:.2f}x")
    drain_rate = options.backlog / drain_s
    print(f"drain: {options.backlog} events in {drain_s:.1f} s = {drain_rate:.0f} events/s; bare paho QoS1 "
          f"subscriber {bare:.0f} msg/s; ratio {drain_rate / bare:.2f}")
    print(f"heap while draining: capped at {options.heap} ({heap_bytes} bytes), least free after a collection "
          f"{least_free}, so at most {heap_bytes - least_free} in use, code loaded from .mpy included")
    print(f"flash: {flash['record_bytes_per_event']} record bytes per event; littlefs programs "
          f"{flash['flash_bytes_programmed_per_event']} ({flash['write_amplification']}x) and erases "
          f"{flash['block_erases_per_event']} 4 KiB blocks per event")
    print(f"scan -> journal on micropython: {flash['us_per_scan_to_journal']} µs per scan (decode, CBOR, MAC, "
          f"append + sync), of which the journal append {flash['us_journal_append']} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
