"""The demo on embedded defaults: scans at a virtual counter, through the broker, into the gateway, and back.

1. Sample scans decoded as the device decodes them.
2. A real Mosquitto, the gateway (`trace-gateway run`) and a counter device running the firmware on the
   micropython executable, its scan engine a pty: scans go in, signals come out, events are stored.
3. The broker goes down: the counter keeps taking scans; they arrive once it is back.
4. What the gateway refuses: a tampered message and one on another device's topic.
5. The POS ticket of those scans arrives over the HTTP API; the coverage and the other rates, and the
   duplicate-sale alert, as `trace-gateway rates` and `trace-gateway alerts` print them.
6. The upload to the platform simulator (3505 rows, one per ticket line), through injected errors and lost
   answers: each row accepted once.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from gateway import cli
from gateway.protocol import ProtocolError, parse_event, verify_mac0
from tools.decode import describe
from tools.gateway_process import GatewayProcess, forward_toml, running_system
from tools.platform_sim import Faults, PlatformSim
from tools.virtual_device import VirtualDevice

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
CATALOG = """pid,list_code,name,pack_size,code_required
8123456,XA01,阿莫西林胶囊 0.25g*24,24,1
06901234567892,XC03,进口胰岛素笔,1,1
06950123456786,XE05,布洛芬缓释胶囊,20,1
MA.156.M0.100023.10010001,XF06,一次性输液器,10,1
"""


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def decode_samples() -> None:
    section("1. Scans decoded as the counter device decodes them (tcagent.codes)")
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


def main() -> int:
    decode_samples()
    key = os.urandom(32)
    with tempfile.TemporaryDirectory(prefix="tracecode-demo-") as scratch:
        platform = PlatformSim(Path(scratch) / "platform.sqlite3", Faults(error_rate=0.2, drop_rate=0.1), seed=1)
        platform.start()
        try:
            return _run(Path(scratch), key, platform)
        finally:
            platform.stop()


def _run(scratch: Path, key: bytes, platform: PlatformSim) -> int:
    forwarding = forward_toml(platform.url, {"P44030000001": "示范大药房"}, sale_hold_s=30, batch_size=10,
                              rate_per_s=0, backoff_base_ms=200, backoff_cap_ms=2000, timeout_ms=2000)
    with running_system(scratch, {DEVICE: key}, forwarding) as (broker, gateway):
        device = VirtualDevice(scratch / DEVICE, {
            "device_id": DEVICE, "key_hex": key.hex(), "broker_host": "127.0.0.1", "broker_port": broker.port,
            "ack_timeout_s": 3, "backoff_max_s": 2})
        try:
            section(f"2. Mosquitto on port {broker.port}, the gateway, and {DEVICE} (firmware on micropython)")
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

            section("5. The POS ticket arrives; rates and alerts (trace-gateway rates / alerts)")
            ticket = {"number": "T20261122-0001", "terminal": "T01", "time": int(time.time() * 1000),
                      "lines": [{"list_code": "XA01", "quantity": 1}, {"list_code": "XC03", "quantity": 1},
                                {"list_code": "XE05", "quantity": 2}, {"list_code": "XF06", "quantity": 2,
                                                                       "split": True}]}
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
                if rows["pending"] == rows["sending"] == 0:
                    break
                time.sleep(0.5)
            print(f"   outbox: {rows}")
            counts = platform.counts()
            print(f"   platform accepted {counts['accepted_rows']} rows ({counts['codes']} codes) once each: "
                  f"{counts.get('doubles', 0)} doubles; {counts.get('fault_error', 0)} errors and "
                  f"{counts.get('fault_drop', 0)} lost answers injected, {counts.get('replays', 0)} retries "
                  "recognised by their msgid")
        finally:
            device.stop()
    print("\nNext: the live dashboard, fleet and POS simulators, PostgreSQL (open issues).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
