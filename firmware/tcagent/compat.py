"""What differs between MicroPython and CPython, in one place."""

import asyncio
import time

try:
    from micropython import const
except ImportError:  # CPython: const() is MicroPython's compile-time constant, here the value itself

    def const(value):  # type: ignore[misc]
        return value




def native(function):
    """Marks a hot function for machine code. Run from source it is the function as written: the aarch64
    unix port has no native emitter and refuses `@micropython.native`, so the source cannot carry it. Compiled
    for a board's arch (tools/paths.compile_firmware), the decorator line becomes `@micropython.native`."""
    return function


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


__all__ = ["const", "native", "ticks_ms", "ticks_diff", "sleep_ms"]
