"""trace-bench-codec: µs per scan (decode + event CBOR + COSE_Mac0) and heap per scan, MicroPython vs CPython.

Both run firmware/bench_codec.py in the same invocation, so the ratio holds on a
noisy shared machine even when the absolute figures move.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from tools.paths import FIRMWARE, micropython, micropython_env

SCRIPT = FIRMWARE / "bench_codec.py"


def run(command: list[str], env: dict[str, str], rounds: int) -> dict[str, Any]:
    result = subprocess.run([*command, str(SCRIPT), str(rounds)], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-bench-codec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5000, help="scans per implementation (default 5000)")
    options = parser.parse_args(argv)
    micro = run([micropython()], micropython_env(FIRMWARE), options.rounds)
    cpython = run([sys.executable], {**os.environ, "PYTHONPATH": str(FIRMWARE)}, options.rounds)
    print(f"machine: {os.cpu_count()} cores; {options.rounds} scans each, cycling 20-digit, GS1 and MA codes")
    print(f"{'':24}{'micropython':>14}{'cpython':>14}{'ratio':>10}")
    for key, label in (("us_per_scan", "µs per scan"), ("us_decode", "  µs decode"), ("us_encode", "  µs event CBOR"),
                       ("us_mac", "  µs COSE_Mac0"), ("heap_bytes_per_scan", "heap bytes per scan"),
                       ("event_bytes", "signed event bytes")):
        ratio = micro[key] / cpython[key] if cpython[key] else float("nan")
        print(f"{label:24}{micro[key]:>14.1f}{cpython[key]:>14.1f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
