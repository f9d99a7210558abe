"""What differs between MicroPython and CPython, in one place."""

import asyncio
import time

try:
    from micropython import const
except ImportError:  # CPython: const() is MicroPython's compile-time constant, here the value itself

    def const(value):  # type: ignore[misc]
        return value


if hasattr(time, "ticks_ms"):  # MicroPython
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
else:

    def ticks_ms():
        return time.monotonic_ns() // 1000000  # type: ignore[attr-defined]  # CPython

    def ticks_diff(end, start):
        return end - start

if hasattr(asyncio, "sleep_ms"):  # MicroPython
    sleep_ms = asyncio.sleep_ms
else:

    async def sleep_ms(ms):  # type: ignore[misc]
        await asyncio.sleep(ms / 1000)


__all__ = ["const", "ticks_ms", "ticks_diff", "sleep_ms"]
