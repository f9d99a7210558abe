"""python -m soaks.gateway_kills: kill the gateway with -9, again and again, while counters keep selling; then check
that every event was stored exactly once and acknowledged.

It starts its own Mosquitto (the shipped configuration) and `trace-gateway run` (SQLite, or `--store
postgresql` on a throwaway durable cluster). Counters publish signed sales the whole time: simulated ones (the
firmware's own event and COSE code, one MQTT 3.1.1 connection each, publishing again what the ack does not cover
after an ack timeout, as the firmware does) and, with `--firmware-devices`, the real firmware on the micropython
executable fed through its pty. Each round waits a random time, then kills the gateway with SIGKILL and starts it
again after a random pause, or, every `--link-every`th round, kills only its MQTT child (the gateway starts
another). The random times come from one seed, printed, so a failing run can be repeated.

At the end: every device's ack reaches its last seq; the store holds every seq 1..last of every device exactly
once (none missing, none twice, nothing quarantined); no MQTT child outlived its gateway. The exit status is 1
when any of that fails.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from harness.broker import Broker
from harness.gateway_process import GatewayProcess, child_pids
from harness.pg_cluster import throwaway_database
from harness.traffic import AckWatcher
from soaks.counters import Counter, FirmwareCounter, Selling, counters_for

__all__ = ["SoakOptions", "SoakResult", "soak", "main"]


@dataclass(frozen=True, kw_only=True)
class SoakOptions:
    rounds: int = 100
    """Kills in all: of the gateway, or of its MQTT child."""
    link_every: int = 4
    """Every Nth round kills the MQTT child instead of the gateway (0: never)."""
    devices: int = 8
    """Simulated counters."""
    firmware_devices: int = 1
    """Counters running the real firmware on micropython."""
    micropython_build: str = "micropython"
    """The MicroPython build they run on (tools.paths.micropython_command: micropython-aarch64 under qemu...)."""
    rate: float = 200.0
    """Sales per second over all counters."""
    up_s: tuple[float, float] = (0.3, 3.0)
    """How long the gateway runs after it is ready before the kill: uniform in this range."""
    down_s: tuple[float, float] = (0.0, 3.0)
    """How long the gateway stays dead before it is started again."""
    ack_timeout_s: int = 2
    """A counter publishes again what its ack does not cover after this long without progress."""
    seed: int | None = None
    """None: a new one, printed."""


@dataclass
class SoakResult:
    seed: int
    published: int = 0
    resent: int = 0
    stored: int = 0
    missing: int = 0
    doubled: int = 0
    quarantined: int = 0
    doubled_sales: int = 0
    """Sales the ledger booked more than once (each box is sold once)."""
    miscounted: int = 0
    """Scans in the hourly rate counters minus events stored."""
    unacked_devices: list[str] = field(default_factory=list)
    """Devices whose ack did not reach their last seq."""
    orphans: list[int] = field(default_factory=list)
    """MQTT children still running after their gateway ended."""
    gateway_ready_ms: list[float] = field(default_factory=list)
    """Start to /readyz answering 200 (connected, subscribed, database reachable), per gateway kill."""
    link_ready_ms: list[float] = field(default_factory=list)
    """Kill of the MQTT child to /readyz answering 200 again (the gateway waits 1 s before a new child)."""
    seconds: float = 0.0

    @property
    def gateway_kills(self) -> int:
        return len(self.gateway_ready_ms)

    @property
    def link_kills(self) -> int:
        return len(self.link_ready_ms)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.doubled or self.doubled_sales or self.miscounted or self.quarantined
                    or self.unacked_devices or self.orphans or self.stored != self.published)

    def summary(self) -> str:
        lines = [
            f"rounds {self.gateway_kills + self.link_kills}: gateway killed {self.gateway_kills} times, its MQTT "
            f"child {self.link_kills} times, in {self.seconds:.0f} s",
            f"events published {self.published:,} (and {self.resent:,} again after ack timeouts), stored "
            f"{self.stored:,}, missing {self.missing}, doubled {self.doubled}, quarantined {self.quarantined}",
            f"sales booked twice in the ledger {self.doubled_sales}, rate counters off by {self.miscounted}",
            f"devices whose ack fell short of their last seq: {', '.join(self.unacked_devices) or 'none'}",
            f"MQTT children left running: {', '.join(map(str, self.orphans)) or 'none'}",
        ]
        for name, times in (("gateway", self.gateway_ready_ms), ("MQTT child", self.link_ready_ms)):
            if times:
                lines.append(f"restart to ready after a kill of the {name}: median {statistics.median(times):.0f} "
                             f"ms, max {max(times):.0f} ms")
        lines.append(f"seed {self.seed}; {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def _link_pids(gateway: GatewayProcess) -> list[int]:
    assert gateway.process is not None
    return [pid for pid in child_pids(gateway.process.pid) if b"gateway.ingest.mqtt_link" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)


def _ready(gateway: GatewayProcess) -> bool:
    try:
        return gateway.api("GET", "/readyz")[0] == 200
    except OSError:
        return False


def _start(gateway: GatewayProcess) -> float:
    """Start the gateway; milliseconds until /readyz answers 200."""
    started = time.monotonic()
    gateway.start()
    _wait(lambda: _ready(gateway), 60, "gateway ready after its start")
    return (time.monotonic() - started) * 1000


def _kill_link(gateway: GatewayProcess) -> float:
    """Kill the gateway's MQTT child; milliseconds until the gateway has another and /readyz answers 200."""
    (old,) = _link_pids(gateway)
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    _wait(lambda: any(pid != old for pid in _link_pids(gateway)), 30, "a new MQTT child")
    _wait(lambda: _ready(gateway), 30, "gateway ready after its MQTT child was killed")
    return (time.monotonic() - killed) * 1000


def soak(folder: Path, options: SoakOptions, *, database: str = "",
         say: Callable[[str], None] = print) -> SoakResult:
    """Run the rounds in `folder` with a fresh broker and gateway (`database`: a PostgreSQL URL, or "" for the
    gateway's SQLite file); `say` gets the progress lines."""
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    result = SoakResult(seed=seed)
    chance = random.Random(seed)
    say(f"cores: {os.cpu_count()}; seed {seed}; {options.rounds} rounds, {options.devices} simulated and "
        f"{options.firmware_devices} firmware counters at {options.rate:g} sales/s")
    with ExitStack() as cleanup:
        broker = Broker(folder / "broker")
        broker.start()
        cleanup.callback(broker.stop)
        (folder / "gateway").mkdir()
        gateway = GatewayProcess(folder / "gateway", broker, database=database)
        cleanup.callback(gateway.stop)
        acks = AckWatcher(broker.port, {})
        cleanup.callback(acks.close)
        keys = {f"bench-{number:04d}": os.urandom(32) for number in range(options.devices)}
        keys |= {f"dev-{number:04d}": os.urandom(32) for number in range(1, options.firmware_devices + 1)}
        for name, key in keys.items():
            gateway.register(name, key)
        _start(gateway)
        counters = counters_for(folder, keys, broker.port, acks, options.ack_timeout_s,
                                micropython_build=options.micropython_build)
        for counter in counters:
            cleanup.callback(counter.close)
        began = time.monotonic()
        selling = Selling(counters, options.rate)
        cleanup.callback(selling.stop)
        links_seen: set[int] = set()
        for round_no in range(1, options.rounds + 1):
            up_s = chance.uniform(*options.up_s)
            time.sleep(up_s)
            links_seen.update(_link_pids(gateway))
            if options.link_every and round_no % options.link_every == 0:
                what = "MQTT child"
                result.link_ready_ms.append(ready_ms := _kill_link(gateway))
            else:
                what = "gateway"
                gateway.stop(kill=True)
                time.sleep(chance.uniform(*options.down_s))
                result.gateway_ready_ms.append(ready_ms := _start(gateway))
            say(f"round {round_no:>4}/{options.rounds}: {what} killed after {up_s:.2f} s, ready again in "
                f"{ready_ms:.0f} ms; published {sum(counter.published for counter in counters):,}, acked "
                f"{sum(acks.acked.values()):,}")
        selling.stop()
        links_seen.update(_link_pids(gateway))
        _settle(counters, acks)
        result.seconds = time.monotonic() - began
        _check(result, gateway, counters, acks)
        gateway.stop()
        result.orphans = _still_running(links_seen)
    return result


def _still_running(links: set[int], grace_s: float = 10) -> list[int]:
    """The MQTT children among `links` still running `grace_s` after their gateways ended."""
    deadline = time.monotonic() + grace_s
    while ((running := [pid for pid in links if b"gateway.ingest.mqtt_link" in _cmdline(pid)])
           and time.monotonic() < deadline):
        time.sleep(0.1)
    return sorted(running)


def _settle(counters: list[Counter], acks: AckWatcher, timeout_s: float = 180) -> None:
    """Wait until every scan is taken and every counter's ack covers its last seq (counters resending meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for counter in counters:
            counter.tick()
        if all(counter.published == counter.scans for counter in counters if isinstance(counter, FirmwareCounter)) \
                and all(acks.acked.get(counter.name, 0) >= counter.published for counter in counters):
            return
        time.sleep(0.1)


def _check(result: SoakResult, gateway: GatewayProcess, counters: list[Counter], acks: AckWatcher) -> None:
    with gateway.store() as store:
        rows = store.query("SELECT device, seq, count(*) FROM events GROUP BY device, seq")
        result.quarantined = int(store.query("SELECT count(*) FROM quarantine")[0][0])
        # each box is sold once: a sale booked twice shows in the ledger and the hourly counters, not in events
        extra_sales = int(store.query("SELECT coalesce(sum(sales - 1), 0) FROM codes")[0][0])
        counted = int(store.query("SELECT coalesce(sum(scans), 0) FROM rate_hours")[0][0])
    stored: dict[str, dict[int, int]] = {}
    for device, seq, times in rows:
        stored.setdefault(device, {})[int(seq)] = int(times)
    for counter in counters:
        last = counter.scans if isinstance(counter, FirmwareCounter) else counter.published
        seqs = stored.pop(counter.name, {})
        result.published += last
        result.resent += counter.resent
        result.stored += sum(seqs.values())
        result.missing += sum(1 for seq in range(1, last + 1) if seq not in seqs)
        result.doubled += sum(times - 1 for times in seqs.values()) + sum(1 for seq in seqs if seq > last)
        if acks.acked.get(counter.name, 0) < last:
            result.unacked_devices.append(f"{counter.name} ({acks.acked.get(counter.name, 0)} of {last})")
    result.doubled += sum(sum(seqs.values()) for seqs in stored.values())  # devices nobody published as
    result.doubled_sales = extra_sales
    result.miscounted = counted - result.stored


def main(argv: list[str] | None = None) -> int:
    defaults = SoakOptions()
    parser = argparse.ArgumentParser(prog="python -m soaks.gateway_kills", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="kills in all")
    parser.add_argument("--link-every", type=int, default=defaults.link_every,
                        help="every Nth round kills the gateway's MQTT child instead (0: never)")
    parser.add_argument("--devices", type=int, default=defaults.devices, help="simulated counters")
    parser.add_argument("--firmware-devices", type=int, default=defaults.firmware_devices,
                        help="counters running the firmware on micropython")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="sales per second, all counters")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    arguments = parser.parse_args(argv)
    options = SoakOptions(rounds=arguments.rounds, link_every=arguments.link_every, devices=arguments.devices,
                          firmware_devices=arguments.firmware_devices, rate=arguments.rate, seed=arguments.seed)
    with (tempfile.TemporaryDirectory(prefix="soak-kills-") as scratch,
          throwaway_database(arguments.store, "soak") as database):
        print(f"store: {arguments.store}")
        result = soak(Path(scratch), options, database=database, say=lambda line: print(line, flush=True))
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
