"""Hardware layers, one per board, all with the same small interface (see unix.Hal for its documentation).

The agent never imports `machine` or `network`: it asks `load()` for the layer of the board it runs on.
"""

import sys
import time


def load(config):
    """The hardware layer for this board: esp32, rp2 (Pico W) or the unix port / CPython on Linux."""
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
