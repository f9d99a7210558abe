"""Benchmark: decode + event CBOR + COSE_Mac0 per scan, and the heap one scan takes.

Runs unchanged on a board (`mpremote run firmware/bench_codec.py`), on the
micropython executable and on CPython; prints one JSON line. The host-side
driver is `python -m benchmarks.codec` (benchmarks/codec.py).
"""

import gc
import json
import sys
import time

from tcagent.codec import codes, cose, event

LINES = (
    b"]C081234567890123456789\r\n",
    b"]d2010690123456789217261200102AB\x1d21XYZ123\r\n",
    b"]Q1MA.156.M0.100023.10010001.S210512001.L200501.E20280430.C2\r\n",
)
KEY = cose.MacKey(bytes(range(32)))
DEVICE = "dev-0001"
KID = b"dev-0001"

if hasattr(time, "ticks_us"):  # MicroPython

    def now_us():
        return time.ticks_us()

    def elapsed_us(start):
        return time.ticks_diff(time.ticks_us(), start)

else:

    def now_us():
        return time.perf_counter_ns() // 1000  # type: ignore[attr-defined]  # CPython only

    def elapsed_us(start):
        return now_us() - start


def one_scan(seq, line):
    scan = codes.decode(line)
    payload = event.encode(DEVICE, seq, 1, 1767225600000 + seq, seq, 1, 1, scan, "T1", 0)
    return cose.sign(KEY, payload, KID)


def timed(rounds):
    """Mean µs per scan, and per stage, over `rounds` scans cycling through LINES."""
    decode_us = encode_us = mac_us = 0
    start_all = now_us()
    for seq in range(1, rounds + 1):
        line = LINES[seq % len(LINES)]
        start = now_us()
        scan = codes.decode(line)
        decode_us += elapsed_us(start)
        start = now_us()
        payload = event.encode(DEVICE, seq, 1, 1767225600000 + seq, seq, 1, 1, scan, "T1", 0)
        encode_us += elapsed_us(start)
        start = now_us()
        cose.sign(KEY, payload, KID)
        mac_us += elapsed_us(start)
    total = elapsed_us(start_all)
    return total / rounds, decode_us / rounds, encode_us / rounds, mac_us / rounds


def heap_per_scan():
    """Largest heap one scan takes, in bytes, with the collector held off during it."""
    peak = 0
    if hasattr(gc, "mem_alloc"):  # MicroPython
        for seq, line in enumerate(LINES):
            gc.collect()
            gc.disable()
            before = gc.mem_alloc()
            one_scan(seq + 1, line)
            peak = max(peak, gc.mem_alloc() - before)
            gc.enable()
    else:
        import tracemalloc  # type: ignore[import-not-found]  # CPython only

        tracemalloc.start()
        for seq, line in enumerate(LINES):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            one_scan(seq + 1, line)
            peak = max(peak, tracemalloc.get_traced_memory()[1] - before)
        tracemalloc.stop()
    return peak


def main(rounds=3000):
    timed(100)  # warm up
    total, decode_us, encode_us, mac_us = timed(rounds)
    print(json.dumps({
        "impl": sys.implementation.name,
        "rounds": rounds,
        "us_per_scan": round(total, 2),
        "us_decode": round(decode_us, 2),
        "us_encode": round(encode_us, 2),
        "us_mac": round(mac_us, 2),
        "heap_bytes_per_scan": heap_per_scan(),
        "event_bytes": len(one_scan(1, LINES[1])),
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
