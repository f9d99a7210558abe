"""The demo on embedded defaults: scans at a virtual counter, through the broker, into the gateway, and back.

1. Sample scans decoded as the device decodes them.
2. A real broker (Mosquitto when installed, otherwise the embedded rumqttd from PyPI), the gateway
   (`trace-gateway run`) and a counter device running the firmware on the micropython executable, its scan
   engine a pty: scans go in, signals come out, events are stored.
3. The broker goes down: the counter keeps taking scans; they arrive once it is back.
4. What the gateway refuses: a tampered message and one on another device's topic.
5. Before settling, the POS asks whether each line has its codes (无码不付, POST /api/v1/tickets/check) and
   prints the answer; then the ticket arrives over the HTTP API; the coverage and the other rates, and the
   duplicate-sale alert, as `trace-gateway rates` and `trace-gateway alerts` print them.
6. The upload to the platform simulator (3505 rows, one per ticket line), signed in (9001) and through
   injected errors and lost answers: each row accepted once.
7. Live: three counters (the firmware on micropython) at two pharmacies, a POS simulator scanning and billing
   checkouts with some duplicates, mismatches and unscanned items, the per-terminal table and the state of the
   uploads (held by the sale timer, ready, sending, retrying, accepted, withheld, withdrawn) redrawn in place;
   Ctrl-C ends it cleanly and the data stays on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

from gateway.faces import cli, cli_tables
from gateway.wire.protocol import ProtocolError, parse_event, verify_mac0
from harness import embedded_broker, pos_sim
from harness.broker import MqttBroker
from harness.gateway_process import READ_TOKEN, WRITE_TOKEN, GatewayProcess, forward_toml, running_system
from harness.virtual_device import VirtualDevice
from tools.decode import describe
from tools.platform_sim import Faults, PlatformSim

SAMPLES = [
    "]C081234567890123456789",
    "]d2010690123456789217261200102AB<GS>21XYZ123",
    "(01)06950123456786(17)270131(10)L-7(21)SN0001",
    "]Q1MA.156.M0.100023.10010001.S210512001.L200501.E20280430.C2",
    "]d2010690123456789321X",
    "]d201069012345678921725010021X",
    "6901234567892",
    "8123456789012345678",
]
VERDICTS = {0: "ok", 1: "duplicate sale", 2: "invalid code", 3: "unknown product", 4: "mismatch", 5: "rejected"}
DEVICE = "counter-01"
SALE_HOLD_S = 30
"""forward.sale_hold_s of the demo: a ticket line waits this long for its last boxes before it goes up."""
CATALOG = """pid,list_code,name,pack_size,code_required
8123456,XA01,阿莫西林胶囊 0.25g*24,24,1
06901234567892,XC03,进口胰岛素笔,1,1
06950123456786,XE05,布洛芬缓释胶囊,20,1
MA.156.M0.100023.10010001,XF06,一次性输液器,10,1
"""


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def decode_samples() -> None:
    section("1. Scans decoded as the counter device decodes them (tcagent.codec.codes)")
    print(f"{'kind':9} {'verdict':18} {'product':26} {'serial':10} {'lot':6} {'expiry':6}  input")
    for sample in SAMPLES:
        result = describe(sample.encode(), today="261122")
        print(f"{result['kind']:9} {result['error']:18} {result['pid']:26} {result['serial']:10} {result['lot']:6} "
              f"{result['expiry']:6}  {sample}")


def wait_stored(gateway: GatewayProcess, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while gateway.count(DEVICE) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def show_signals(device: VirtualDevice, since: int) -> int:
    for line in device.lines[since:]:
        if line.startswith("signal"):
            print(f"   counter: {line}")
    return len(device.lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--live-seconds", type=float, default=60, help="length of the live part (Ctrl-C ends it)")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto",
                        help="auto: Mosquitto when installed, otherwise the embedded broker (rumqttd from PyPI)")
    options = parser.parse_args(argv)
    if options.broker == "auto":
        options.broker = embedded_broker.resolve("auto")
        if options.broker == "embedded":
            print("Mosquitto is not installed (apt-get install mosquitto): the demo runs the embedded broker, "
                  "rumqttd from the PyPI package iotcore, which keeps nothing on disk and has no ACL.")
    decode_samples()
    key = os.urandom(32)
    scratch = Path(tempfile.mkdtemp(prefix="tracecode-demo-"))
    platform = PlatformSim(scratch / "platform.sqlite3", Faults(error_rate=0.2, drop_rate=0.1, sign_in_required=True),
                           seed=1)
    platform.start()
    status = 0
    try:
        status = _run(scratch, key, platform, options.live_seconds, options.broker)
    except KeyboardInterrupt:  # Ctrl-C before the live part: everything was stopped on the way out
        print("\n   stopped by Ctrl-C")
    finally:
        platform.stop()
    print(f"\nThe data stays in {scratch}: the gateway's database {scratch / 'gateway' / 'data' / 'gateway.sqlite3'},"
          f" the platform simulator's {scratch / 'platform.sqlite3'}. Look at it with\n"
          f"   .venv/bin/trace-gateway --config {scratch / 'gateway' / 'gateway.toml'} rates --window-h 2\n"
          f"   .venv/bin/trace-gateway --config {scratch / 'gateway' / 'gateway.toml'} alerts")
    return status


def _run(scratch: Path, key: bytes, platform: PlatformSim, live_seconds: float, broker_choice: str) -> int:
    forwarding = forward_toml(platform.url, {"P44030000001": "示范大药房", "P44030000002": "第二药房"},
                              sale_hold_s=SALE_HOLD_S, batch_size=10, rate_per_s=0, backoff_base_ms=200,
                              backoff_cap_ms=2000, timeout_ms=2000)
    with running_system(scratch, {DEVICE: key}, forwarding, broker_choice) as (broker, gateway):
        device = VirtualDevice(scratch / DEVICE, {
            "device_id": DEVICE, "key_hex": key.hex(), "broker_host": "127.0.0.1", "broker_port": broker.port,
            "ack_timeout_s": 3, "backoff_max_s": 2})
        try:
            section(f"2. {broker.name} on port {broker.port}, the gateway, and {DEVICE} (firmware on micropython)")
            print(f"   catalog imported: {gateway.api('PUT', '/api/v1/catalog', CATALOG.encode(), write=True)[1]}")
            device.start()
            device.wait_for(r"^signal online", timeout=20)
            seen = len(device.lines)
            for sample in ["TC:TKT:T20261122-0001", *SAMPLES[:3], SAMPLES[1], "TC:QTY:2", SAMPLES[3], SAMPLES[6]]:
                print(f"   scan: {sample}")
                device.scan(sample.replace("<GS>", "\x1d"))
                time.sleep(0.4)
            wait_stored(gateway, 6)
            time.sleep(0.5)
            seen = show_signals(device, seen)
            print("   gateway store (events table):")
            for seq, signed, verdict in gateway.events(DEVICE):
                event = parse_event(verify_mac0(signed, {DEVICE: key}.get, topic_device=DEVICE))
                print(f"     seq {seq}: {event.code[:30]!r:34} ticket {event.ticket or '-':16} split {event.split_qty} "
                      f"-> {VERDICTS[verdict]}")

            section("3. The broker goes down for 5 s; the counter keeps taking scans")
            broker.stop()
            for number in range(3):
                device.scan(f"8123456000000000{number:04d}")
            time.sleep(1)
            seen = show_signals(device, seen)
            stored = gateway.count(DEVICE)
            print(f"   stored at the gateway so far: {stored}")
            time.sleep(4)
            broker.start()
            wait_stored(gateway, stored + 3)
            seen = show_signals(device, seen)
            print(f"   broker back: stored now {gateway.count(DEVICE)} (each once: unique on device and seq)")

            section("4. What the gateway refuses")
            message = gateway.events(DEVICE)[0][1]
            tampered = bytearray(message)
            tampered[60] ^= 0x01
            for label, data, topic in (("one byte changed", bytes(tampered), DEVICE), ("other topic", message, "x")):
                try:
                    verify_mac0(data, {DEVICE: key}.get, topic_device=topic)
                    print(f"   {label}: accepted (this is a bug)")
                    return 1
                except ProtocolError as error:
                    print(f"   {label}: refused, reason {error.reason!r}")

            section("5. The POS asks before settling (无码不付), the ticket arrives; rates and alerts")
            ticket = {"number": "T20261122-0001", "terminal": "T01", "time": int(time.time() * 1000),
                      "lines": [{"list_code": "XA01", "quantity": 1}, {"list_code": "XC03", "quantity": 1},
                                {"list_code": "XE05", "quantity": 2}, {"list_code": "XF06", "quantity": 2,
                                                                       "split": True}]}
            _ask_before_paying(gateway, ticket)
            answer = gateway.api("POST", "/api/v1/tickets", json.dumps(ticket).encode(), write=True)
            print(f"   POST /api/v1/tickets: {answer}")
            for command in (["rates"], ["alerts"]):
                print(f"   $ trace-gateway {command[0]}")
                output = io.StringIO()
                with contextlib.redirect_stdout(output):
                    cli.main(["--config", str(gateway.config), *command])
                print(textwrap.indent(output.getvalue().rstrip(), "   "))

            section("6. Upload to the platform (simulator answering 20% with errors and losing 10% of answers)")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = gateway.api("GET", "/api/v1/outbox")[1]["rows"]  # type: ignore[index]
                if rows["held"] == rows["pending"] == rows["sending"] == 0:
                    break
                time.sleep(0.5)
            print(f"   {upload_states(rows)}")
            print("   (withheld: scans the ticket does not sell, such as a second read of one box or a box it does "
                  "not bill; kept, never uploaded as sales)")
            counts = platform.counts()
            print(f"   sign-ins (9001): {counts.get('sign_ins', 0)}, one per configured institution at start; every "
                  "request carried its institution's sign_no")
            print(f"   platform accepted {counts['accepted_rows']} rows ({counts['codes']} codes) once each: "
                  f"{counts.get('doubles', 0)} doubles; {counts.get('fault_error', 0)} errors and "
                  f"{counts.get('fault_drop', 0)} lost answers injected, {counts.get('replays', 0)} retries "
                  "recognised by their msgid")
            if live_seconds > 0:
                _live(scratch, broker, gateway, platform, device, live_seconds)
        finally:
            device.stop()
    return 0


def _ask_before_paying(gateway: GatewayProcess, ticket: dict[str, object]) -> None:
    """无码不付: the POS asks the gateway whether every line has its codes before it settles."""
    status, answer = gateway.api("POST", "/api/v1/tickets/check", json.dumps(ticket).encode())
    print(f"   POS asks before settling, POST /api/v1/tickets/check: HTTP {status}, pay: {answer['pay']}")  # type: ignore[index]
    for line in answer["lines"]:  # type: ignore[index]
        print(f"     line {line['line_no']} {line['list_code']} x{line['quantity']}: {len(line['scanned'])} of "
              f"{line['needed']} codes scanned, {line['missing']} missing, duplicates {line['duplicates'] or '-'}, "
              f"mismatches {line['mismatches'] or '-'}")


def _live(scratch: Path, broker: MqttBroker, gateway: GatewayProcess, platform: PlatformSim, first: VirtualDevice,
          seconds: float) -> None:
    section(f"7. Live: three counters, their POS and the platform for {seconds:.0f} s (Ctrl-C ends it); "
            f"dashboard: http://127.0.0.1:{gateway.api_port}/dashboard/ (token {READ_TOKEN})")
    gateway.api("PUT", "/api/v1/catalog", pos_sim.catalog_csv().encode(), write=True)
    lanes = [pos_sim.Lane("T01", first)]
    others: list[VirtualDevice] = []
    for name, terminal, institution in (("counter-02", "T02", "P44030000001"), ("counter-03", "T03", "P44030000002")):
        key = os.urandom(32)
        gateway.register(name, key, terminal=terminal, institution=institution)
        scanner = VirtualDevice(scratch / name, {"device_id": name, "key_hex": key.hex(), "broker_host": "127.0.0.1",
                                                 "broker_port": broker.port, "ack_timeout_s": 3, "backoff_max_s": 2})
        scanner.start()
        others.append(scanner)
        lanes.append(pos_sim.Lane(terminal, scanner))
    for scanner in others:
        scanner.wait_for(r"^signal online", timeout=20)
    pos = pos_sim.PosSimulator(f"http://127.0.0.1:{gateway.api_port}", WRITE_TOKEN, lanes, seed=7, duplicate=0.08,
                               mismatch=0.06, unscanned=0.06)
    live = sys.stdout.isatty()
    drawn = 0
    started = printed = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            pos.checkout()
            table = _live_table(gateway, platform, pos, time.monotonic() - started)
            if live:  # redrawn in place
                print(f"\x1b[{drawn}F\x1b[J" if drawn else "", end="")
                print(table, flush=True)
                drawn = table.count("\n") + 1
            elif time.monotonic() - printed >= 10:  # a log or a pipe: a table every 10 s
                print(table, flush=True)
                printed = time.monotonic()
        if not live:
            print(_live_table(gateway, platform, pos, time.monotonic() - started), flush=True)
    except KeyboardInterrupt:
        print("\n   stopping: the counters, the gateway, the broker and the platform simulator shut down cleanly")
    finally:
        for scanner in others:
            scanner.stop()


def upload_states(rows: dict[str, int]) -> str:
    """The outbox's rows by state, in words (GET /api/v1/outbox)."""
    return (f"uploads: held {rows['held']}, ready {rows['pending']}, sending {rows['sending']} "
            f"(retrying {rows['retrying']}), accepted {rows['done']}, withheld {rows['withheld']}, "
            f"withdrawn {rows['withdrawn']}, dead {rows['dead']}")


def _live_table(gateway: GatewayProcess, platform: PlatformSim, pos: pos_sim.PosSimulator, elapsed: float) -> str:
    rows = gateway.api("GET", "/api/v1/rates?window_h=2")[1]["rates"]  # type: ignore[index]
    uploads = gateway.api("GET", "/api/v1/outbox")[1]["rows"]  # type: ignore[index]
    alerts = gateway.api("GET", "/api/v1/alerts?state=live&limit=200")[1]["alerts"]  # type: ignore[index]

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.0f}%"

    table = cli_tables.table(
        ["terminal", "institution", "coverage", "scans", "duplicates", "mismatched", "uploaded", "stored"],
        [[row["terminal"], row["institution"], percent(row["coverage"]), row["scans"], row["duplicate_sales"],
          row["mismatched_scans"], row["uploaded"], row["stored"]] for row in rows])
    kinds = Counter(alert["type"] for alert in alerts)
    return (f"   after {elapsed:4.0f} s: {pos.checkouts} checkouts ({pos.held_payments} the no-code-no-pay check "
            f"held), injected {dict(pos.injected)}; platform accepted "
            f"{platform.counts().get('accepted_rows', 0)} rows\n" + textwrap.indent(table, "   ")
            + f"\n   {upload_states(uploads)}\n   (held: sale rows waiting up to {SALE_HOLD_S} s for the rest of "
            "their ticket line, by design; ready: planned within a second; retrying: sent again after an error or "
            f"a lost answer)\n   live alerts: {dict(kinds) or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
