"""Hardware layers, one per board, all with the same small interface (see unix.Hal for its documentation).

The agent never imports `machine` or `network`: it asks `load()` for the layer of the board it runs on.
"""

import sys
import time

from tcagent.codec import event
from tcagent.compat import ticks_diff, ticks_ms


def load(config, platform=None):
    """The hardware layer for this board (`platform`, None: sys.platform): esp32, rp2 (Pico, Pico W) or the unix
    port / CPython on Linux."""
    if platform is None:
        platform = sys.platform
    if platform == "esp32":
        from tcagent.hal import esp32

        return esp32.Hal(config)
    if platform == "rp2":
        from tcagent.hal import rp2

        return rp2.Hal(config)
    from tcagent.hal import unix

    return unix.Hal(config)


def local_date(epoch_ms, offset_min):
    """YYMMDD of the local date at `epoch_ms` (Unix epoch) shifted by `offset_min`; "" for 0 (unsynced)."""
    if not epoch_ms:
        return ""
    year, month, day = time.gmtime(epoch_ms // 1000 + offset_min * 60)[:3]
    return "%02d%02d%02d" % (year % 100, month, day)


class BaseHal:
    """Time keeping shared by every board; a board adds its devices and its host clock (`_clock_ms`)."""

    name = "base"

    def __init__(self, config, clock):
        self.config = config
        self.data_dir = config["data_dir"]
        self.clock = clock
        self._offset_ms = 0

    def _clock_ms(self):
        """The board's own clock, ms since the Unix epoch."""
        raise NotImplementedError

    def ticks_ms(self):
        return ticks_ms()

    def ticks_diff(self, end, start):
        return ticks_diff(end, start)

    def time_ms(self):
        """Milliseconds since the Unix epoch, or 0 while the clock was never synced."""
        if self.clock == event.CLOCK_UNSYNCED:
            return 0
        return self._clock_ms() + self._offset_ms

    def set_time(self, epoch_ms):
        """The gateway's time command: from now on, time as the gateway says."""
        self._offset_ms = epoch_ms - self._clock_ms()
        self.clock = event.CLOCK_GATEWAY

    def today(self):
        """Local date as YYMMDD for expiry checks, or "" while the clock is unsynced."""
        return local_date(self.time_ms(), self.config["utc_offset_min"])
