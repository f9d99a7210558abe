"""Hardware layer for Linux boards: the MicroPython unix port, or CPython.

The scan engine is a serial device (/dev/ttyACM0, /dev/ttyUSB0, or a pty in tests) set
to raw mode; the network is the host's; signals go to standard output, one line each
(`signal taken seq=12`), where a technician, a test or a GPIO helper can read them.
"""

import gc
import sys
import time

from tcagent.codec import event
from tcagent.hal import BaseHal

_MICROPYTHON = sys.implementation.name == "micropython"


class ScannerPort:
    """The scan engine's serial device, read without blocking the event loop."""

    def __init__(self, path, baud):
        self.path = path
        self._file = open(path, "rb") if _MICROPYTHON else open(path, "rb", buffering=0)
        _raw_mode(self._file.fileno(), baud)
        if _MICROPYTHON:
            import asyncio
            import select

            self._stream = asyncio.StreamReader(self._file)
            self._poller = select.poll()
            self._poller.register(self._file, select.POLLIN)
        else:
            import os

            os.set_blocking(self._file.fileno(), False)
            self._ready = None

    async def read(self, buffer):
        """Wait for bytes and read what is there into `buffer`; return the count (0 at hang-up)."""
        if _MICROPYTHON:
            first = await self._stream.read(1)
            if not first:
                return 0
            buffer[0] = first[0]
            count = 1
            while count < len(buffer) and self._poller.poll(0):
                more = self._file.read(1)
                if not more:
                    break
                buffer[count] = more[0]
                count += 1
            return count
        return await self._read_cpython(buffer)

    async def _read_cpython(self, buffer):
        import asyncio
        import os

        loop = asyncio.get_running_loop()
        while True:
            try:
                data = os.read(self._file.fileno(), len(buffer))
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_reader(self._file.fileno(), ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_reader(self._file.fileno())
                continue
            except OSError:
                return 0  # EIO: the other end of the pty closed
            buffer[: len(data)] = data
            return len(data)


def _raw_mode(fd, baud):
    try:
        import termios  # type: ignore[import-not-found]  # unix port and CPython only
    except ImportError:
        return
    if _MICROPYTHON:
        termios.setraw(fd)
        return
    import tty  # type: ignore[import-not-found]  # CPython only

    tty.setraw(fd)
    attributes = termios.tcgetattr(fd)
    speed = getattr(termios, "B%d" % baud, None)
    if speed is not None:
        attributes[4] = attributes[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attributes)


class Hal(BaseHal):
    """The interface every board's layer offers the agent."""

    name = "unix"

    def __init__(self, config):
        super().__init__(config, event.CLOCK_NTP if config["trust_host_clock"] else event.CLOCK_UNSYNCED)

    def _clock_ms(self):
        return time.time_ns() // 1000000

    async def sync_clock(self):
        """NTP on boards; the host keeps its own time here."""

    # ---- devices ----
    def open_scanner(self):
        return ScannerPort(self.config["uart"]["port"], self.config["uart"]["baud"])

    def signal(self, name, detail=""):
        print("signal %s %s" % (name, detail) if detail else "signal " + name)
        if not _MICROPYTHON:
            sys.stdout.flush()  # MicroPython's print is unbuffered; CPython's is not when piped

    def network_available(self):
        return True

    async def connect_network(self):
        return True

    def watchdog_start(self, timeout_ms):
        """No hardware watchdog here: run the agent under systemd with WatchdogSec instead."""

    def watchdog_feed(self):
        pass

    def free_heap(self):
        """Free heap after a collection (MicroPython), so the figure is headroom, not garbage; 0 on CPython."""
        if not hasattr(gc, "mem_free"):
            return 0
        gc.collect()
        return gc.mem_free()

    def reboot(self):
        sys.exit(75)  # the service manager restarts the agent
