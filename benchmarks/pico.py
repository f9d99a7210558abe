"""python -m benchmarks.pico: the agent's heap and flash figures on a Pico in the RP2040 model, beside the unix port's.

- heap while draining: the agent (today's code as .mpy, on the committed PPP Pico image) boots with a backlog
  already in its journal and drains it over PPP into the real gateway; the least free heap its status messages
  report (after a collection, once a second) for a small backlog and for a full journal; the baseline is the
  same agent draining the same backlogs on the unix port (heap capped at 144K, as python -m benchmarks.agent does);
- filesystem: how many events the Pico's littlefs (1.4 MB) holds, appending one signed event after another
  with a flush each, as the agent does, until the filesystem refuses; and the erases and bytes the model's
  flash chip counted per event on the way.

Model figures: emulated time at 125 MHz, no XIP cache model (harness/pico_model.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from harness.gateway_process import GatewayProcess, running_system
from harness.pico_model import IMAGES, PicoModel, littlefs_image, model_available
from harness.ppp_peer import HOST_ALIAS, SlirpPeer, peer_available
from harness.progress import Progress
from harness.virtual_device import VirtualDevice
from tools.paths import FIRMWARE, RP2040_ARCH, compile_firmware

IMAGE = IMAGES / "RPI_PICO_PPP-v1.28.0-base.uf2"
PPP = {"id": 1, "tx": 4, "rx": 5, "baud": 115200}  # as the rp2040 HIL target wires it
UNIX_HEAP = "144K"
RECORD_MAX = 1280

# Run on the Pico: append one signed event after another until littlefs refuses, counting them.
_FILL = """
import json, os
from tcagent import journal
from tcagent.codec import codes, cose, event
key = cose.MacKey(bytes(32))
store = journal.Journal("/fill", 16 * 1024 * 1024, 16384, %d)
count = 0
why = ""
while True:
    seq = store.next_seq()
    scan = codes.decode(("]d20106901234567892172612001020AB\\x1d21S%%08d" %% seq).encode())
    message = cose.sign(key, event.encode("pico-1", seq, 1, 1767225600000, seq, 1, 1, scan, "T1", 0), b"pico-1")
    try:
        store.append(seq, message)
    except (OSError, journal.JournalFull) as error:
        why = repr(error)
        break
    count += 1
stat = os.statvfs("/")
print(json.dumps({"events": count, "record_bytes": journal.HEADER_SIZE + len(message), "why": why,
                  "fs_bytes": stat[0] * stat[2]}))
"""


def fill_journal(folder: Path, device: str, key: bytes, capacity: int, count: int | None) -> int:
    """Write signed events into a journal at `folder` with the firmware's own modules (on CPython).

    `count` events, or with None as many as `capacity` takes (a full journal); returns how many.
    """
    sys.path.insert(0, str(FIRMWARE))
    from tcagent import journal
    from tcagent.codec import codes, cose, event

    mac_key = cose.MacKey(key)
    store = journal.Journal(str(folder), capacity, 16384, RECORD_MAX)
    written = 0
    while count is None or written < count:
        seq = store.next_seq()
        scan = codes.decode(f"8123456{seq:013d}".encode())
        try:
            store.append(seq, cose.sign(mac_key, event.encode(device, seq, 1, 0, seq, 0, 1, scan, "", 0),
                                        device.encode()))
        except journal.JournalFull:
            break
        written += 1
    store.close()
    return written


@contextmanager
def statuses(port: int, device: str) -> Iterator[list[dict[int, Any]]]:
    """The status messages `device` publishes while the block runs."""
    received: list[dict[int, Any]] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-status-{device}")
    watcher.on_message = lambda client, userdata, message: received.append(cbor2.loads(message.payload))
    watcher.connect("127.0.0.1", port)
    watcher.subscribe(f"tc/v1/{device}/status", qos=1)
    watcher.loop_start()
    try:
        yield received
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def wait_stored(gateway: GatewayProcess, device: str, count: int, progress: Progress, timeout: float) -> float:
    started = time.monotonic()
    while (stored := gateway.count(device)) < count:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{device}: {stored} of {count} events stored after {timeout:.0f} s")
        progress.tick(f"{stored} of {count} stored")
        time.sleep(0.5)
    return time.monotonic() - started


def least_free(received: list[dict[int, Any]]) -> int:
    """The least free heap among the statuses (key 5), after the first (sent at connect, before the drain)."""
    values = [int(status[5]) for status in received[1:] if 5 in status]
    if not values:
        raise SystemExit("no status message came while draining: the drain was shorter than a status interval")
    return min(values)


def drain_on_pico(work: Path, gateway: GatewayProcess, port: int, device: str, key: bytes, backlog: int | None,
                  config: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Boot the agent in the model with a backlog in its journal; the least free heap while it drains."""
    folder = work / device
    journal_dir = folder / "data" / "journal"
    written = fill_journal(journal_dir, device, key, config["journal_capacity"], backlog)
    compiled = compile_firmware(work / "mpy", RP2040_ARCH)
    files = {str(path.relative_to(compiled)): path.read_bytes() for path in compiled.rglob("tcagent/**/*.mpy")}
    files["main.py"] = (FIRMWARE / "main.py").read_bytes()
    files["config.json"] = json.dumps({**config, "device_id": device, "broker_port": port}).encode()
    for path in journal_dir.rglob("*"):
        if path.is_file():
            files[str(path.relative_to(folder))] = path.read_bytes()
    progress.phase(f"Pico: draining {written} events over PPP into the gateway")
    console = bytearray()
    with statuses(port, device) as received, \
            PicoModel(uf2=IMAGE, fs=littlefs_image(files), workdir=folder) as pico:
        pico.on_console(console.extend)
        peer = SlirpPeer(pico, PPP["id"], folder / "slirp")
        try:
            seconds = wait_stored(gateway, device, written, progress, timeout=120 + written)
            time.sleep(2.5 * config["status_interval_s"])  # a status after the last ack
        except SystemExit as error:
            tail = console[-2000:].decode(errors="replace")
            raise SystemExit(f"{error}; the Pico's console ended:\n{tail}") from None
        finally:
            peer.stop()
    return {"events": written, "least_free": least_free(received), "wall_s": seconds}


def drain_on_unix(work: Path, gateway: GatewayProcess, port: int, device: str, key: bytes, backlog: int | None,
                  config: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The same drain on the unix port, the heap capped as on a board."""
    folder = work / device
    written = fill_journal(folder / "data" / "journal", device, key, config["journal_capacity"], backlog)
    progress.phase(f"unix port: draining {written} events into the gateway, heap capped at {UNIX_HEAP}")
    settings = {**config, "device_id": device, "broker_host": "127.0.0.1", "broker_port": port}
    with statuses(port, device) as received, \
            VirtualDevice(folder, settings, heap=UNIX_HEAP, compiled=True):
        seconds = wait_stored(gateway, device, written, progress, timeout=120 + written)
        time.sleep(2.5 * config["status_interval_s"])
    return {"events": written, "least_free": least_free(received), "wall_s": seconds}


def fill_filesystem(work: Path, progress: Progress) -> dict[str, Any]:
    """Events the Pico's littlefs holds, and the flash chip's erases and programmed bytes per event."""
    progress.phase("Pico: appending events to a journal until its littlefs is full (a few minutes)")
    compiled = compile_firmware(work / "mpy-fill", RP2040_ARCH)
    files = {str(path.relative_to(compiled)): path.read_bytes() for path in compiled.rglob("tcagent/**/*.mpy")}
    with PicoModel(uf2=IMAGES / "RPI_PICO-v1.28.0-base.uf2", fs=littlefs_image(files), workdir=work) as pico:
        pico.wait_connected()
        pico.enter_raw_repl()
        before = pico.flash_stats()
        figures: dict[str, Any] = json.loads(pico.exec_raw(_FILL % RECORD_MAX, timeout=3600).strip().splitlines()[-1])
        after = pico.flash_stats()
    figures["erases_per_event"] = (after.erases - before.erases) / figures["events"]
    figures["programmed_per_event"] = (after.programmed - before.programmed) / figures["events"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pico", description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100, help="events in the small backlog (default 100)")
    parser.add_argument("--no-fill", action="store_true", help="skip filling the Pico's filesystem")
    options = parser.parse_args(argv)
    reason = model_available() or peer_available()
    if reason is not None:
        raise SystemExit(f"the RP2040 model cannot run here: {reason}")
    key = os.urandom(32)
    devices = {name: key for name in ("pico-small", "pico-full", "unix-small", "unix-full")}
    config = {"key_hex": key.hex(), "status_interval_s": 1, "debounce_ms": 0,
              "journal_capacity": 262144, "journal_segment": 16384}  # the shipped journal size
    pico_config = {**config, "broker_host": HOST_ALIAS, "ppp": PPP}
    progress = Progress("python -m benchmarks.pico")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pico-") as scratch, \
            running_system(Path(scratch), devices) as (broker, gateway):
        work = Path(scratch)
        for size, backlog in (("small", options.small), ("full", None)):
            results[f"pico-{size}"] = drain_on_pico(work, gateway, broker.port, f"pico-{size}", key, backlog,
                                                   pico_config, progress)
            results[f"unix-{size}"] = drain_on_unix(work, gateway, broker.port, f"unix-{size}", key, backlog,
                                                   config, progress)
        fill = None if options.no_fill else fill_filesystem(work, progress)
    print(f"machine: {os.cpu_count()} cores. RP2040 model: rp2040js, emulated 125 MHz, no XIP cache model; "
          "MicroPython v1.28.0 RPI_PICO_PPP base image, agent as .mpy in littlefs, PPP at 115200 baud to slirp. "
          f"Baseline: the agent on the unix port, heap capped at {UNIX_HEAP}, same run, same gateway.")
    print(f"journal_capacity {config['journal_capacity']} B (the shipped default), status once a second")
    print(f"{'least free heap while draining':40}{'RP2040 model':>14}{'unix port':>14}{'ratio':>8}")
    for size in ("small", "full"):
        pico, unix = results[f"pico-{size}"], results[f"unix-{size}"]
        label = f"  {size} backlog ({pico['events']} events)"
        print(f"{label:40}{pico['least_free']:>14}{unix['least_free']:>14}"
              f"{pico['least_free'] / unix['least_free']:>7.2f}x")
    growth_pico = results["pico-small"]["least_free"] - results["pico-full"]["least_free"]
    growth_unix = results["unix-small"]["least_free"] - results["unix-full"]["least_free"]
    print(f"growth with backlog (small minus full): RP2040 model {growth_pico} B, unix port {growth_unix} B")
    print(f"drain wall time, full journal: RP2040 model {results['pico-full']['wall_s']:.0f} s, unix port "
          f"{results['unix-full']['wall_s']:.0f} s")
    if fill is not None:
        print(f"Pico littlefs ({fill['fs_bytes']} B) holds {fill['events']} events of {fill['record_bytes']} record"
              f" bytes, appended and flushed one by one until: {fill['why']}")
        print(f"flash erases per event {fill['erases_per_event']:.2f} (4 KB sectors), bytes programmed per event "
              f"{fill['programmed_per_event']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
