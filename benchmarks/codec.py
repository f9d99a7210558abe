"""python -m benchmarks.codec: µs per scan (decode + event CBOR + COSE_Mac0) and heap per scan, MicroPython vs CPython.

Both run firmware/bench_codec.py in the same invocation, so the ratio holds on a
noisy shared machine even when the absolute figures move. With `--model` the
same benchmark runs on a Pico in the RP2040 model (harness/pico_model.py: the
committed MicroPython image, today's agent as .mpy on its filesystem) beside
the unix port as the baseline, with the heap and the journal on the Pico's flash.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.paths import FIRMWARE, RP2040_ARCH, compile_firmware, micropython, micropython_env

SCRIPT = FIRMWARE / "bench_codec.py"
ROWS = (("us_per_scan", "µs per scan"), ("us_decode", "  µs decode"), ("us_encode", "  µs event CBOR"),
        ("us_mac", "  µs COSE_Mac0"), ("heap_bytes_per_scan", "heap bytes per scan"),
        ("event_bytes", "signed event bytes"))

# Run on the Pico after a soft reset: free heap at the REPL, then after importing what main.py imports.
_HEAP_AFTER_IMPORTS = """
import gc, json
gc.collect(); repl = gc.mem_free()
from tcagent import agent, config, hal, link, journal
from tcagent.codec import codes, cose, event
gc.collect(); print(json.dumps({"free_at_repl": repl, "free_after_imports": gc.mem_free(), "from": codes.__file__}))
"""

# Run on the Pico: append signed events to a journal on its own littlefs, each flushed as the agent does.
_JOURNAL = """
import gc, json, time
from tcagent import journal
from tcagent.codec import codes, cose, event
key = cose.MacKey(bytes(32))
store = journal.Journal("/journal", 512 * 1024, 16384, 1280)
append_us = 0
for number in range(%d):
    seq = store.next_seq()
    scan = codes.decode(("]d20106901234567892172612001020AB\\x1d21S%%08d" %% number).encode())
    message = cose.sign(key, event.encode("dev-0001", seq, 1, 1767225600000, number, 1, 1, scan, "T1", 0), b"d")
    start = time.ticks_us()
    store.append(seq, message)
    append_us += time.ticks_diff(time.ticks_us(), start)
print(json.dumps({"us_journal_append": append_us / %d, "record_bytes": journal.HEADER_SIZE + len(message)}))
"""


def run(command: list[str], env: dict[str, str], rounds: int) -> dict[str, Any]:
    result = subprocess.run([*command, str(SCRIPT), str(rounds)], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def run_in_model(rounds: int, appends: int) -> dict[str, Any]:
    """bench_codec.py, the heap and journal appends on a Pico in the RP2040 model (emulated time)."""
    from harness.pico_model import IMAGES, PicoModel, littlefs_image, model_available

    reason = model_available()
    if reason is not None:
        raise SystemExit(f"the RP2040 model cannot run: {reason}")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        compiled = compile_firmware(work / "mpy", RP2040_ARCH)
        files = {str(path.relative_to(compiled)): path.read_bytes() for path in compiled.rglob("tcagent/**/*.mpy")}
        with PicoModel(uf2=IMAGES / "RPI_PICO-v1.28.0-base.uf2", fs=littlefs_image(files), workdir=work) as pico:
            pico.wait_connected()
            pico.enter_raw_repl()
            figures: dict[str, Any] = json.loads(pico.exec_raw(_HEAP_AFTER_IMPORTS).strip().splitlines()[-1])
            pico.soft_reset()
            source = SCRIPT.read_text().replace('if __name__ == "__main__":', "if False:") + f"\nmain({rounds})\n"
            figures.update(json.loads(pico.exec_raw(source, timeout=1800).strip().splitlines()[-1]))
            pico.soft_reset()
            before = pico.flash_stats()
            figures.update(json.loads(pico.exec_raw(_JOURNAL % (appends, appends), timeout=1800).strip()))
            after = pico.flash_stats()
    figures["erases_per_event"] = (after.erases - before.erases) / appends
    figures["programmed_per_event"] = (after.programmed - before.programmed) / appends
    figures["appends"] = appends
    return figures


def print_model(rounds: int, appends: int) -> None:
    unix = run([micropython()], micropython_env(FIRMWARE), rounds)
    pico = run_in_model(rounds, appends)
    print(f"machine: {os.cpu_count()} cores; {rounds} scans each, cycling 20-digit, GS1 and MA codes")
    print("RP2040 model: rp2040js, emulated 125 MHz, no XIP cache model (a board can be slower); MicroPython v1.28.0"
          " RPI_PICO base image, agent as .mpy in littlefs. Baseline: the unix port on this machine, same run.")
    print(f"{'':24}{'RP2040 model':>14}{'unix port':>14}{'ratio':>10}")
    for key, label in ROWS:
        ratio = pico[key] / unix[key] if unix[key] else float("nan")
        print(f"{label:24}{pico[key]:>14.1f}{unix[key]:>14.1f}{ratio:>9.1f}x")
    codec = pico["us_decode"] + pico["us_encode"] + pico["us_mac"]
    print(f"decode + CBOR + MAC in the model: {codec / 1000:.2f} ms per scan")
    print(f"free heap at the REPL: {pico['free_at_repl']} B; after importing what main.py imports (from .mpy,"
          f" {pico['from']}): {pico['free_after_imports']} B")
    print(f"journal on the Pico's littlefs, {appends} events of {pico['record_bytes']} record bytes, each flushed:"
          f" {pico['us_journal_append']:.0f} µs per append; flash erases per event"
          f" {pico['erases_per_event']:.2f} (4 KB sectors), bytes programmed per event"
          f" {pico['programmed_per_event']:.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.codec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="scans per implementation (default 5000, or 200 with --model)")
    parser.add_argument("--model", action="store_true",
                        help="run on a Pico in the RP2040 model, with the unix port as the baseline")
    parser.add_argument("--appends", type=int, default=200, help="journal appends on the Pico with --model (200)")
    options = parser.parse_args(argv)
    if options.model:
        print_model(options.rounds or 200, options.appends)
        return 0
    rounds = options.rounds or 5000
    micro = run([micropython()], micropython_env(FIRMWARE), rounds)
    cpython = run([sys.executable], {**os.environ, "PYTHONPATH": str(FIRMWARE)}, rounds)
    print(f"machine: {os.cpu_count()} cores; {rounds} scans each, cycling 20-digit, GS1 and MA codes")
    print(f"{'':24}{'micropython':>14}{'cpython':>14}{'ratio':>10}")
    for key, label in ROWS:
        ratio = micro[key] / cpython[key] if cpython[key] else float("nan")
        print(f"{label:24}{micro[key]:>14.1f}{cpython[key]:>14.1f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
