"""Hardware layer for the Raspberry Pi Pico and Pico W (RP2040).

A Pico W joins Wi-Fi; a plain Pico has no network, unless its config names a UART for PPP (`ppp`) and the image
has network.PPP (firmware/boards/RPI_PICO_PPP): then the link runs over PPP, whatever the radio.
"""

import machine

from tcagent.hal import ppp
from tcagent.hal.board import BoardHal

_WATCHDOG_MAX_MS = 8388  # the RP2040 watchdog cannot wait longer


def _open_uart(settings, rxbuf):
    return machine.UART(settings["id"], baudrate=settings["baud"], tx=machine.Pin(settings["tx"]),
                        rx=machine.Pin(settings["rx"]), rxbuf=rxbuf, timeout=0)


class Hal(BoardHal):
    name = "rp2"

    def __init__(self, config):
        super().__init__(config)
        self._ppp = None

    def make_uart(self):
        return _open_uart(self.config["uart"], 1024)

    def _uses_ppp(self):
        return self.config["ppp"]["id"] >= 0

    def network_available(self):
        if self._uses_ppp():
            return ppp.available()
        return super().network_available()

    async def connect_network(self):
        if not self._uses_ppp():
            return await super().connect_network()
        if not ppp.available():
            return False
        if self._ppp is None:
            self._ppp = ppp.PppLink(_open_uart(self.config["ppp"], 2048))  # a whole 1500-byte frame, escaped
        return await self._ppp.connect()

    def watchdog_start(self, timeout_ms):
        super().watchdog_start(min(timeout_ms, _WATCHDOG_MAX_MS))
