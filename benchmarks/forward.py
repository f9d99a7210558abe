"""python -m benchmarks.forward: forwarding to the platform simulator, next to a bare HTTP client sending the
same requests.

- throughput without faults: rows/s the forwarder gets accepted (plan, store the request, send, settle, count
  uploaded), against a bare httpx client with the same concurrency posting the very same request bodies to a
  fresh simulator (the platform's own pace here): the ratio;
- throughput under the fault mix of the forwarding tests (30% HTTP 500, 10% timeouts, 5% answers lost after
  processing), as a ratio to the run without faults;
- drain: the backlog of a 10-minute platform outage at 100 events/s (60,000 events, stored as ingest stores
  them) while new events keep arriving at 100/s: seconds until the backlog is accepted.

It prints the machine's core count. The simulator answers after --latency-ms, as a remote platform would.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from gateway.domain import catalog, pipeline
from gateway.metrics import Metrics
from gateway.outbound.forwarder import Forwarder
from gateway.rules import Rules
from gateway.settings import ForwardSettings
from gateway.store.base import Device
from gateway.store.sqlite import SQLiteStore
from gateway.wire.protocol import Event, Operation
from harness.gateway_process import FORWARD_DEFAULTS
from harness.progress import Progress
from tcagent.codec import codes
from tools.platform_sim import Faults, PlatformSim

INSTITUTION = "P44030000001"
_CATALOG = "pid,list_code,name,pack_size\n8123456,XA01,Amoxicillin,24\n"
_FAULT_MIX: dict[str, object] = {"error_rate": 0.3, "timeout_rate": 0.1, "drop_rate": 0.05, "hang_ms": 1500}


class _Events:
    """Sale events for one device, committed as ingest commits them."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.seq = 0
        store.add_device(Device(device="bench-dev", key=bytes(32), terminal="T01", institution=INSTITUTION))
        with store.transaction() as tx:
            catalog.replace_products(tx, catalog.read_csv(_CATALOG))

    def add(self, count: int) -> int:
        """Commit `count` events in batches of 500; the highest outbox id so far."""
        rules = Rules()
        while count > 0:
            batch = []
            for _ in range(min(500, count)):
                self.seq += 1
                scan = codes.decode(f"8123456{self.seq:013d}".encode())
                now = time.time_ns() // 1_000_000
                event = Event(device="bench-dev", seq=self.seq, boot=1, time_ms=now, uptime_ms=self.seq, clock=1,
                              op=Operation.SALE, raw=scan.raw, kind=scan.kind, code=scan.code.decode(),
                              pid=scan.pid.decode(), serial=scan.serial.decode(), err=scan.err)
                batch.append(pipeline.Accepted(event, b"bench", now))
            pipeline.commit(self.store, rules, accepted=batch)
            count -= len(batch)
        return int(self.store.query("SELECT max(id) FROM outbox")[0][0])


def _settings(url: str, options: argparse.Namespace) -> ForwardSettings:
    return ForwardSettings(base_url=url, batch_size=options.batch_size, concurrency=options.concurrency,
                           rate_per_s=0, sale_hold_s=0, timeout_ms=1000, backoff_base_ms=100, backoff_cap_ms=2000,
                           breaker_failures=1000, defaults=FORWARD_DEFAULTS,
                           institutions={INSTITUTION: {"fixmedins_name": "bench pharmacy"}})


def _unsettled(store: SQLiteStore, up_to: int) -> int:
    return int(store.query("SELECT count(*) FROM outbox WHERE id <= ? AND state IN ('pending', 'sending')",
                           (up_to,))[0][0])


def _forward(folder: Path, options: argparse.Namespace, faults: dict[str, object]) -> tuple[float, list[bytes]]:
    """(rows/s accepted, the request bodies sent) for options.events events."""
    store = SQLiteStore(folder / "gateway.sqlite3")
    sim = PlatformSim(folder / "platform.sqlite3", Faults(latency_ms=options.latency_ms), seed=11)
    sim.set_faults(faults)
    sim.start()
    try:
        last = _Events(store).add(options.events)
        forwarder = Forwarder(_settings(sim.url, options), store, timezone="Asia/Shanghai", instance="bench",
                              metrics=Metrics(store))
        started = time.monotonic()
        forwarder.start()
        while _unsettled(store, last):
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        forwarder.stop()
        if sim.counts()["accepted_rows"] != options.events or sim.counts().get("doubles", 0):
            raise RuntimeError(f"not exactly once: {sim.counts()}")
        bodies = [bytes(body) for (body,) in store.query("SELECT body FROM requests ORDER BY id")]
        return options.events / elapsed, bodies
    finally:
        sim.stop()
        store.close()


def _bare(folder: Path, options: argparse.Namespace, bodies: list[bytes]) -> float:
    """Rows/s a bare httpx client gets accepted posting `bodies` with the same concurrency."""
    sim = PlatformSim(folder / "bare-platform.sqlite3", Faults(latency_ms=options.latency_ms))
    sim.start()
    rows = sum(len(next(iter(json.loads(body)["input"].values()))) if options.batch_size > 1 else 1
               for body in bodies)
    try:
        with httpx.Client(base_url=sim.url, timeout=10) as client:
            started = time.monotonic()
            with ThreadPoolExecutor(options.concurrency) as pool:
                list(pool.map(lambda body: client.post("/fsi/api/rsfComIfsService/callService", content=body),
                              bodies))
            return rows / (time.monotonic() - started)
    finally:
        sim.stop()


def _drain(folder: Path, options: argparse.Namespace) -> tuple[float, int]:
    """(seconds to accept the backlog of a 10-minute outage at 100 events/s while 100/s keep arriving, backlog)."""
    store = SQLiteStore(folder / "gateway.sqlite3")
    sim = PlatformSim(folder / "platform.sqlite3", Faults(latency_ms=options.latency_ms))
    sim.start()
    events = _Events(store)
    backlog = options.outage_s * options.arrival_rate
    last = events.add(backlog)
    stop = threading.Event()

    def arrivals() -> None:
        while not stop.is_set():
            events.add(options.arrival_rate // 10)
            stop.wait(0.1)

    feeder = threading.Thread(target=arrivals, daemon=True)
    forwarder = Forwarder(_settings(sim.url, options), store, timezone="Asia/Shanghai", instance="bench",
                          metrics=Metrics(store))
    try:
        started = time.monotonic()
        feeder.start()
        forwarder.start()
        while _unsettled(store, last):
            time.sleep(0.2)
        return time.monotonic() - started, backlog
    finally:
        stop.set()
        feeder.join()
        forwarder.stop()
        sim.stop()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forward", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=20, help="the simulator's answer time")
    parser.add_argument("--outage-s", type=int, default=600)
    parser.add_argument("--arrival-rate", type=int, default=100, help="events/s during the outage and the drain")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as scratch:
        folder = Path(scratch)
        for name in ("clean", "faults", "drain"):
            (folder / name).mkdir()
        progress = Progress("python -m benchmarks.forward")
        progress.phase(f"forwarding {options.events} events to the simulator, no faults")
        clean, bodies = _forward(folder / "clean", options, {})
        progress.phase("baseline: the same requests with bare httpx")
        bare = _bare(folder, options, bodies)
        progress.phase("forwarding again with the fault mix")
        faulty, _ = _forward(folder / "faults", options, _FAULT_MIX)
        progress.phase(f"draining the backlog of a {options.outage_s} s outage while {options.arrival_rate}/s arrive")
        drain_s, backlog = _drain(folder / "drain", options)
    figures = {"cores": os.cpu_count(), "events": options.events, "batch_size": options.batch_size,
               "concurrency": options.concurrency, "latency_ms": options.latency_ms,
               "bare_rows_per_s": round(bare), "forward_rows_per_s": round(clean), "ratio": round(clean / bare, 3),
               "faults_rows_per_s": round(faulty), "faults_ratio": round(faulty / clean, 3),
               "backlog": backlog, "arrival_rate": options.arrival_rate, "drain_s": round(drain_s, 1)}
    if options.json:
        print(json.dumps(figures))
    else:
        print(f"cores: {figures['cores']}; {options.events} events, batch {options.batch_size}, concurrency "
              f"{options.concurrency}, platform answers after {options.latency_ms} ms")
        print(f"bare httpx, same requests:   {figures['bare_rows_per_s']:>7} rows/s (baseline)")
        print(f"forwarder, no faults:        {figures['forward_rows_per_s']:>7} rows/s (ratio {figures['ratio']})")
        print(f"forwarder, fault mix:        {figures['faults_rows_per_s']:>7} rows/s "
              f"({figures['faults_ratio']} of no faults)")
        print(f"backlog of {backlog} events ({options.outage_s} s outage at {options.arrival_rate}/s) drained in "
              f"{figures['drain_s']} s while {options.arrival_rate}/s kept arriving")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
