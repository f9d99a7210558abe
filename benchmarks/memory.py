"""python -m benchmarks.memory: the gateway's resident memory while it ingests a million events; it must not grow with
history.

The real gateway (`trace-gateway run`, SQLite by default, or `--database postgresql` on a throwaway cluster)
takes rounds of signed events from D devices through Mosquitto; after each round is acknowledged the RSS of
its two processes (VmRSS, with the MQTT link's child) is read. The baseline is the RSS after the first round,
in the same run: the report gives the last round's RSS as a ratio of it, and the growth per 100,000 events
between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.broker import Broker
from harness.gateway_process import GatewayProcess, child_pids
from harness.pg_cluster import throwaway_database
from harness.traffic import AckWatcher, publish_all, signed_stream


def rss_bytes(pid: int) -> int:
    """VmRSS of the process and of its children (the gateway's MQTT link)."""
    return _own_rss(pid) + sum(_own_rss(child) for child in child_pids(pid))


def _own_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def measure(folder: Path, *, events: int, per_round: int, devices: int, database: str) -> dict[str, Any]:
    keys = {f"bench-{number:04d}": os.urandom(32) for number in range(devices)}
    broker = Broker(folder / "broker")
    broker.start()
    (folder / "gateway").mkdir()
    gateway = GatewayProcess(folder / "gateway", broker, set_clocks=False, database=database)
    samples: list[tuple[int, int]] = []
    try:
        for device, key in keys.items():
            gateway.register(device, key)
        gateway.start()
        assert gateway.process is not None
        started = time.monotonic()
        stream = signed_stream(devices, per_round, keys)
        for first in range(0, events, per_round):
            expected: dict[str, int] = {}
            for device, seq, _ in stream:
                expected[device] = max(seq, expected.get(device, 0))
            watcher = AckWatcher(broker.port, expected)
            publisher = threading.Thread(target=publish_all, args=(broker.port, stream))
            publisher.start()
            following = first + per_round  # signed while this round is ingested
            stream = signed_stream(devices, min(per_round, events - following), keys, first=following) \
                if following < events else []
            publisher.join()
            if not watcher.done.wait(600):
                raise RuntimeError(f"round from event {first}: acks incomplete")
            watcher.close()
            samples.append((first + per_round, rss_bytes(gateway.process.pid)))
            print(f"{samples[-1][0]:>10} events  RSS {samples[-1][1] / 2**20:7.1f} MiB", flush=True)
        elapsed = time.monotonic() - started
    finally:
        gateway.stop()
        broker.stop()
    base_events, base_rss = samples[0]
    last_events, last_rss = samples[-1]
    span = max(1, last_events - base_events)
    return {"cores": os.cpu_count(), "events": last_events, "devices": devices, "seconds": round(elapsed),
            "rss_mib": [(count, round(rss / 2**20, 1)) for count, rss in samples],
            "baseline_rss_mib": round(base_rss / 2**20, 1), "final_rss_mib": round(last_rss / 2**20, 1),
            "ratio": round(last_rss / base_rss, 3),
            "growth_kib_per_100k_events": round((last_rss - base_rss) / 1024 * 100_000 / span, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--round", type=int, default=50_000, help="events between two RSS readings")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    if options.events % options.round:
        parser.error("--events must be a multiple of --round")
    with (tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch,
          throwaway_database(options.database, "bench") as database):
        figures = measure(Path(scratch), events=options.events, per_round=options.round, devices=options.devices,
                          database=database)
    if options.json:
        print(json.dumps(figures))
    else:
        print(f"cores: {figures['cores']}; {figures['events']} events from {figures['devices']} devices in "
              f"{figures['seconds']} s on {options.database}")
        print(f"RSS after the first round (baseline) {figures['baseline_rss_mib']} MiB, after the last "
              f"{figures['final_rss_mib']} MiB: ratio {figures['ratio']}, "
              f"{figures['growth_kib_per_100k_events']} KiB per 100,000 events")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
