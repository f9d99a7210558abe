"""The POS check (无码不付) and a ticket's claim, with many scans stored and waiting unmatched.

    .venv/bin/python -m benchmarks.paycheck --scans 100000

Stores `--scans` sale scans as ingest stores them (pipeline.commit, batches of 500; SQLite), half of them loose
at one counter within the last ten minutes and of the products its ticket bills (the worst case for matching:
attack finding F8 had a ticket read every such scan), the rest spread over 19 other counters. Then, through
the HTTP API on loopback:
- baseline: `GET /readyz` (the same server, token check, worker thread and a database read);
- the check: `POST /api/v1/tickets/check` of a 3-line ticket at the flooded counter;
and in process: storing a ticket at the flooded counter (its claim) against storing one at a counter with
nothing waiting. Prints the core count, median and 99th percentile, and the ratios to the baselines.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gateway.domain import catalog, pipeline
from gateway.faces.api import ApiServer
from gateway.metrics import Metrics
from gateway.rules import Rules
from gateway.settings import ApiSettings
from gateway.store.base import Device
from gateway.store.sqlite import SQLiteStore
from gateway.wire.protocol import Event, Operation
from gateway.wire.ticket import parse_ticket
from tcagent.codec import codes

_CATALOG = "pid,list_code,name,pack_size\n8123456,XA01,A,24\n8654321,XB02,B,20\n8111112,XH08,H,30\n"
_PREFIXES = ("8123456", "8654321", "8111112")
_TOKEN = "bench-token"


def _load(store: SQLiteStore, scans: int, now_ms: int) -> None:
    rules = Rules()
    seqs = {f"bench-{number:02d}": 0 for number in range(20)}
    for device in seqs:
        store.add_device(Device(device=device, key=bytes(32), terminal=device.replace("bench", "T"),
                                institution="P44030000001"))
    with store.transaction() as tx:
        catalog.replace_products(tx, catalog.read_csv(_CATALOG))
    serial = 0
    while serial < scans:
        batch = []
        for _ in range(min(500, scans - serial)):
            serial += 1
            device = "bench-00" if serial % 2 else f"bench-{1 + serial % 19:02d}"
            seqs[device] += 1
            scan = codes.decode(f"{_PREFIXES[serial % 3]}{serial:013d}".encode())
            when = now_ms - (serial * 7919) % 600_000 if device == "bench-00" else now_ms - (serial % 28_800) * 1000
            event = Event(device=device, seq=seqs[device], boot=1, time_ms=when, uptime_ms=1, clock=1,
                          op=Operation.SALE, raw=scan.raw, aim=scan.aim.decode(), kind=scan.kind,
                          code=scan.code.decode(), pid=scan.pid.decode(), serial=scan.serial.decode(),
                          lot=scan.lot.decode(), expiry=scan.expiry.decode(), made=scan.made.decode(),
                          err=scan.err, ticket="", split_qty=0)
            batch.append(pipeline.Accepted(event, f"{device}/{serial}".encode(), when))
        pipeline.commit(store, rules, accepted=batch)


def _timed(call: Callable[[], object], rounds: int) -> list[float]:
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def _summary(name: str, spent: list[float]) -> float:
    median = statistics.median(spent)
    p99 = sorted(spent)[max(0, int(len(spent) * 0.99) - 1)]
    print(f"  {name:44} median {median:7.2f} ms   p99 {p99:7.2f} ms")
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paycheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=100_000, help="sale scans stored before measuring")
    parser.add_argument("--rounds", type=int, default=200)
    options = parser.parse_args(argv)
    print(f"cores: {os.cpu_count()}")
    folder = Path(tempfile.mkdtemp(prefix="bench-paycheck-"))
    store = SQLiteStore(folder / "gateway.sqlite3")
    now_ms = time.time_ns() // 1_000_000
    started = time.monotonic()
    _load(store, options.scans, now_ms)
    print(f"stored {options.scans} sale scans in {time.monotonic() - started:.0f} s, "
          f"{options.scans // 2} of them loose at counter T-00 within the last 10 minutes")
    rules = Rules()
    server = ApiServer(ApiSettings(port=0), store, rules, Metrics(store), read_token=_TOKEN, write_token=_TOKEN,
                       ready=lambda: {})
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = {"Authorization": f"Bearer {_TOKEN}", "Content-Type": "application/json"}
        body = json.dumps({"number": "CHECK-1", "terminal": "T-00", "lines": [
            {"list_code": "XA01", "quantity": 3}, {"list_code": "XB02", "quantity": 2},
            {"list_code": "XH08", "quantity": 4, "split": True}]}).encode()

        def ask(method: str, path: str, data: bytes | None = None) -> None:
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"{method} {path}: HTTP {answer.status}")

        print(f"through the HTTP API, {options.rounds} rounds each:")
        base = _summary("baseline GET /readyz", _timed(lambda: ask("GET", "/readyz"), options.rounds))
        check = _summary("POST /api/v1/tickets/check (3 lines, T-00)",
                         _timed(lambda: ask("POST", "/api/v1/tickets/check", body), options.rounds))
        print(f"  check / baseline: {check / base:.1f}x")
    finally:
        server.stop()
    numbers = iter(range(1, 1_000_000))

    def store_ticket(terminal: str) -> None:
        ticket = parse_ticket({"number": f"B{next(numbers)}", "terminal": terminal, "time": now_ms,
                               "lines": [{"list_code": "XA01", "quantity": 2}]})
        pipeline.commit(store, rules, tickets_in=[pipeline.TicketIn(ticket, "bench", b"{}", now_ms)])

    rounds = max(10, options.rounds // 10)
    print(f"storing a ticket (its claim), {rounds} rounds each:")
    idle = _summary("baseline: at T-07, nothing waiting", _timed(lambda: store_ticket("T-07"), rounds))
    flooded = _summary(f"at T-00, {options.scans // 2} scans waiting", _timed(lambda: store_ticket("T-00"), rounds))
    print(f"  flooded / baseline: {flooded / idle:.1f}x")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
