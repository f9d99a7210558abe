"""What differs between MicroPython and CPython at run time: the tick counter and asyncio's sleep.
(`const` and the `@native` mark are in tcagent.codec.compat, at the bottom.)"""

import asyncio
import time

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


__all__ = ["ticks_ms", "ticks_diff", "sleep_ms"]
