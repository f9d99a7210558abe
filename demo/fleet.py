"""python -m demo.fleet: many simulated counters and their POS, speaking the real protocol to a running gateway.

    python -m demo.fleet --broker 127.0.0.1:1883 --api http://127.0.0.1:8080 --write-token ... \\
        --devices 500 --institutions 50 --seconds 60 --checkouts-per-min 2 --fraud repeat=0.01,mismatch=0.02

A light event generator for thousands of devices: each device signs its events with the firmware's own encoder and
COSE code (on CPython), publishes QoS 1 on its topic, keeps what the gateway has not acknowledged, and publishes it
again after --ack-timeout-s, as the agent does. Its POS sends each checkout's ticket to the gateway's API. Traffic
is a pharmacy's: checkouts of 1-5 items at random times, split packs, re-reads the device drops (as its debounce
would), offline spells, and at the given rates the fraud patterns the gateway must catch:

- repeat: a box already sold at the same institution sold again (串换/重复结算);
- cross: a box sold at one institution sold at another (hospital to pharmacy: 回流);
- distant: a box sold at an institution of another region within the hour (cloned code);
- mismatch: a scanned box of another product than the ticket line bills (串换);
- unscanned: a ticket line requiring a code with no scan (无码销售).

It prints what it injected, so the gateway's alerts and rates can be checked against it.

With --firmware N it runs N counters as real firmware processes instead (the agent on the micropython executable,
its scan engine a pty, harness/virtual_device.py), each with its own key and terminal, and the POS simulator
(harness/pos_sim.py) scans and bills checkouts at them as a cashier would; --fraud takes repeat, mismatch and
unscanned there. Both modes sell the catalog `catalog_csv()` gives (import it into the gateway first).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.wire.protocol import Verdict
from harness import pos_sim
from harness.progress import Progress
from tcagent.codec import codes, cose, event

__all__ = ["Fleet", "FleetDevice", "PRODUCTS", "catalog_csv", "run", "run_firmware", "main"]

PRODUCTS = [(prefix, list_code, pack) for prefix, list_code, _, pack in pos_sim.PRODUCTS]
"""(7-digit product prefix, insurance list code, pack size): what the fleet sells, the POS simulator's catalog."""
FRAUDS = ("repeat", "cross", "distant", "mismatch", "unscanned")
FIRMWARE_FRAUDS = ("repeat", "mismatch", "unscanned")
catalog_csv = pos_sim.catalog_csv


@dataclass
class FleetDevice:
    name: str
    key: bytes = field(repr=False)
    terminal: str
    institution: str
    kind: str
    region: str
    seq: int = 0
    acked: int = 0
    unacked: dict[int, tuple[float, bytes]] = field(default_factory=dict)
    offline_until: float = 0.0


class Fleet:
    """The devices, their POS, the injected patterns and what the gateway answered."""

    def __init__(self, *, devices: int, institutions: int, seed: int, fraud: dict[str, float],
                 ack_timeout_s: float = 5.0) -> None:
        self.chance = random.Random(seed)
        self.fraud = fraud
        self.ack_timeout_s = ack_timeout_s
        self.devices: list[FleetDevice] = []
        for number in range(devices):
            place = number % institutions
            kind = "hospital" if place % 10 == 0 else "pharmacy"
            self.devices.append(FleetDevice(
                name=f"fleet-{number:05d}", key=os.urandom(32), terminal=f"F{number:05d}",
                institution=f"F{place:011d}", kind=kind, region="440300" if place % 4 else "110100"))
        self.by_name = {device.name: device for device in self.devices}
        self.injected: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.sold: list[tuple[FleetDevice, str]] = []
        self.serial = 0
        self.tickets: list[dict[str, object]] = []
        self._lock = threading.Lock()
        self._client: paho.Client | None = None

    def register(self, location: str) -> None:
        """Put every device in the gateway's registry (as trace-provision would)."""
        from gateway.store.base import Device
        from gateway.store.opening import open_store

        store = open_store(location)
        for device in self.devices:
            store.add_device(Device(device=device.name, key=device.key, terminal=device.terminal,
                                    institution=device.institution, institution_type=device.kind,
                                    region=device.region))
        store.close()

    def connect(self, host: str, port: int) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{os.getpid()}")
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(0)
        client.on_message = self._on_ack
        client.connect(host, port)
        client.subscribe("tc/v1/+/ack", qos=1)
        client.loop_start()
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()

    def _on_ack(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        name = message.topic.split("/")[2]
        ack = cbor2.loads(message.payload)
        with self._lock:
            device = self.by_name.get(name)
            if device is None:
                return
            device.acked = max(device.acked, int(ack[1]))
            for seq in [seq for seq in device.unacked if seq <= device.acked]:
                del device.unacked[seq]
            for _, verdict in ack.get(2, []):
                self.verdicts[_verdict_name(int(verdict))] += 1

    def _publish(self, device: FleetDevice, code_text: str, *, ticket: str = "", split: int = 0,
                 when_ms: int | None = None) -> None:
        scan = codes.decode(code_text.encode())
        with self._lock:
            device.seq += 1
            seq = device.seq
        payload = event.encode(device.name, seq, 1, when_ms or time.time_ns() // 1_000_000, seq, 1, 1, scan, ticket,
                               split)
        message = cose.sign(cose.MacKey(device.key), payload, device.name.encode())
        with self._lock:
            device.unacked[seq] = (time.monotonic(), message)
        if time.monotonic() >= device.offline_until and self._client is not None:
            self._client.publish(f"tc/v1/{device.name}/ev", message, qos=1)

    def resend(self) -> int:
        """Publish again what was not acknowledged within the timeout (and what waited out an offline spell)."""
        now = time.monotonic()
        again = 0
        with self._lock:
            due = [(device, seq, message) for device in self.devices if now >= device.offline_until
                   for seq, (sent, message) in sorted(device.unacked.items()) if now - sent >= self.ack_timeout_s]
            for device, seq, message in due:
                device.unacked[seq] = (now, message)
        for device, _, message in due:
            if self._client is not None:
                self._client.publish(f"tc/v1/{device.name}/ev", message, qos=1)
                again += 1
        return again

    def new_code(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:013d}"

    def checkout(self, device: FleetDevice, number: int) -> dict[str, object]:
        """One customer at `device`'s counter: the ticket (returned) and its scans (published)."""
        ticket = f"{device.terminal}-{number:06d}"
        lines: list[tuple[str, str, int, bool]] = []
        for _ in range(self.chance.randint(1, 5)):
            prefix, list_code, pack = self.chance.choice(PRODUCTS)
            split = self.chance.random() < 0.15
            lines.append((prefix, list_code, self.chance.randint(1, pack - 1) if split else self.chance.randint(1, 2),
                          split))
        billed = {prefix for prefix, _, _, _ in lines}
        for prefix, _, quantity, split in lines:
            for _ in range(1 if split else quantity):
                self._scan_line(device, ticket, prefix, quantity if split else 0, billed)
        return {"number": ticket, "terminal": device.terminal, "time": int(time.time() * 1000),
                "lines": [{"list_code": list_code, "quantity": quantity, "split": split}
                          for _, list_code, quantity, split in lines]}

    def _pattern(self) -> str:
        draw, edge = self.chance.random(), 0.0
        for name in FRAUDS:
            edge += self.fraud.get(name, 0.0)
            if draw < edge:
                return name
        return ""

    def _scan_line(self, device: FleetDevice, ticket: str, prefix: str, split: int, billed: set[str]) -> None:
        pattern = self._pattern()
        if pattern == "unscanned":
            self.injected["unscanned"] += 1
            return
        others = [item[0] for item in PRODUCTS if item[0] not in billed]
        if pattern == "mismatch" and others:  # a product the ticket does not bill at all
            self.injected["mismatch"] += 1
            self._publish(device, self.new_code(self.chance.choice(others)), ticket=ticket, split=split)
            return
        if pattern in ("repeat", "cross", "distant") and self.sold:
            candidates = [(seller, code_text) for seller, code_text in self.sold[-500:] if code_text.startswith(prefix)
                          and (seller.institution == device.institution) == (pattern == "repeat")
                          and (pattern != "distant" or seller.region != device.region)]
            if candidates:
                seller, code_text = self.chance.choice(candidates)
                self.injected[pattern] += 1
                self._publish(device, code_text, ticket=ticket)
                return
        code_text = self.new_code(prefix)
        if self.chance.random() < 0.05:
            self.injected["reread_dropped"] += 1  # the engine read it twice; the device's debounce drops one
        self._publish(device, code_text, ticket=ticket, split=split)
        self.sold.append((device, code_text))

    def outstanding(self) -> int:
        with self._lock:
            return sum(len(device.unacked) for device in self.devices)


def _verdict_name(code: int) -> str:
    """The verdict's name in words (`duplicate_sale`), or `unknown_<n>` for a code this tool does not know."""
    try:
        return Verdict(code).name.lower()
    except ValueError:
        return f"unknown_{code}"


def _post_ticket(api: str, token: str, ticket: dict[str, object]) -> int:
    request = urllib.request.Request(f"{api}/api/v1/tickets", data=json.dumps(ticket).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def run(fleet: Fleet, *, api: str, token: str, seconds: float, checkouts_per_min: float,
        offline_rate: float = 0.0) -> dict[str, object]:
    """Drive the fleet for `seconds`, then wait (up to 60 s) until every event is acknowledged."""
    started = time.monotonic()
    number = 0
    posted: Counter[int] = Counter()
    per_second = len(fleet.devices) * checkouts_per_min / 60
    progress = Progress("python -m demo.fleet")
    while time.monotonic() - started < seconds:
        progress.tick(f"{number} checkouts, {sum(d.seq for d in fleet.devices)} events, "
                     f"{fleet.outstanding()} not yet acknowledged")
        for _ in range(max(1, int(fleet.chance.expovariate(1.0) * per_second))):
            device = fleet.chance.choice(fleet.devices)
            if fleet.chance.random() < offline_rate:
                device.offline_until = time.monotonic() + fleet.chance.uniform(2, 10)
                fleet.injected["offline_spells"] += 1
            number += 1
            posted[_post_ticket(api, token, fleet.checkout(device, number))] += 1
        fleet.resend()
        time.sleep(1.0)
    deadline = time.monotonic() + 60
    progress.phase(f"selling stopped after {number} checkouts; waiting up to 60 s for the acknowledgements")
    while fleet.outstanding() and time.monotonic() < deadline:
        progress.tick(f"{fleet.outstanding()} events not yet acknowledged")
        fleet.resend()
        time.sleep(0.5)
    events = sum(device.seq for device in fleet.devices)
    return {"devices": len(fleet.devices), "checkouts": number, "events": events,
            "unacknowledged": fleet.outstanding(), "tickets": dict(posted), "injected": dict(fleet.injected),
            "verdicts": dict(sorted(fleet.verdicts.items()))}


def run_firmware(counters: int, *, broker: tuple[str, int], api: str, token: str, database: str, seconds: float,
                 fraud: dict[str, float], seed: int, folder: Path) -> dict[str, object]:
    """`counters` real firmware processes, registered in the gateway at `database`, driven by the POS simulator
    for `seconds`; waits (up to 60 s) until every device's journal is acknowledged."""
    from gateway.store.base import Device
    from gateway.store.opening import open_store
    from harness.virtual_device import VirtualDevice

    store = open_store(database)
    lanes = []
    try:
        for number in range(counters):
            name, key = f"fw-{number:03d}", os.urandom(32)
            store.add_device(Device(device=name, key=key, terminal=f"FW{number:03d}",
                                    institution=f"P4403{number // 3:07d}", region="440300"))
            scanner = VirtualDevice(folder / name, {"device_id": name, "key_hex": key.hex(), "broker_host": broker[0],
                                                    "broker_port": broker[1], "status_interval_s": 2})
            lanes.append(pos_sim.Lane(f"FW{number:03d}", scanner))
            scanner.start()
        progress = Progress("python -m demo.fleet")
        progress.phase(f"{counters} firmware counters started; waiting for them to come online")
        for lane in lanes:
            lane.scanner.wait_for(r"^signal online", timeout=30)
        pos = pos_sim.PosSimulator(api, token, lanes, seed=seed, duplicate=fraud.get("repeat", 0.0),
                                   mismatch=fraud.get("mismatch", 0.0), unscanned=fraud.get("unscanned", 0.0))
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            progress.tick(f"{pos.checkouts} checkouts")
            pos.checkout()
        progress.phase(f"selling stopped after {pos.checkouts} checkouts; waiting up to 60 s for the journals to drain")
        names = [lane.scanner.config["device_id"] for lane in lanes]
        marks = ",".join("?" * counters)
        ended_ms = time.time_ns() // 1_000_000
        deadline = time.monotonic() + 60
        backlog = counters
        while backlog and time.monotonic() < deadline:  # a status sent after the last checkout, with nothing left
            progress.tick(f"{backlog} counters still have a backlog or no status since")
            time.sleep(1)
            backlog = int(store.query(f"SELECT count(*) FROM device_state WHERE device IN ({marks}) "
                                      f"AND (backlog > 0 OR status_ms < ?)", [*names, ended_ms])[0][0])
        events = int(store.query(f"SELECT count(*) FROM events WHERE device IN ({marks})", names)[0][0])
        return {"mode": "firmware", "devices": counters, "checkouts": pos.checkouts, "events": events,
                "devices_with_backlog": backlog, "injected": dict(pos.injected)}
    finally:
        for lane in lanes:
            lane.scanner.stop()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.fleet", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--write-token", required=True)
    parser.add_argument("--database", required=True,
                        help="the gateway's SQLite file or postgresql:// URL, to register the devices")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--institutions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--checkouts-per-min", type=float, default=1.0, help="per device")
    parser.add_argument("--offline-rate", type=float, default=0.01, help="chance per checkout of an offline spell")
    parser.add_argument("--fraud", default="", help="pattern=rate,... of " + ", ".join(FRAUDS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--firmware", type=int, default=0, metavar="N",
                        help="run N counters as real firmware processes driven by the POS simulator")
    options = parser.parse_args(argv)
    fraud = {}
    allowed = FIRMWARE_FRAUDS if options.firmware else FRAUDS
    for part in filter(None, options.fraud.split(",")):
        name, _, value = part.partition("=")
        if name not in allowed:
            parser.error(f"--fraud: {name!r} is none of {', '.join(allowed)}")
        fraud[name] = float(value)
    host, _, port = options.broker.partition(":")
    if options.firmware:
        with tempfile.TemporaryDirectory(prefix="trace-fleet-") as scratch:
            report = run_firmware(options.firmware, broker=(host, int(port or 1883)), api=options.api,
                                  token=options.write_token, database=options.database, seconds=options.seconds,
                                  fraud=fraud, seed=options.seed, folder=Path(scratch))
        print(json.dumps(report, indent=1))
        return 0
    fleet = Fleet(devices=options.devices, institutions=options.institutions, seed=options.seed, fraud=fraud)
    fleet.register(options.database)
    fleet.connect(host, int(port or 1883))
    try:
        report = run(fleet, api=options.api, token=options.write_token, seconds=options.seconds,
                     checkouts_per_min=options.checkouts_per_min, offline_rate=options.offline_rate)
    finally:
        fleet.close()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
