"""Hardware layer for the Raspberry Pi Pico and Pico W (RP2040); the Pico without radio has no network."""

import machine

from tcagent.hal.board import BoardHal

_WATCHDOG_MAX_MS = 8388  # the RP2040 watchdog cannot wait longer


class Hal(BoardHal):
    name = "rp2"

    def make_uart(self):
        uart = self.config["uart"]
        return machine.UART(uart["id"], baudrate=uart["baud"], tx=machine.Pin(uart["tx"]), rx=machine.Pin(uart["rx"]),
                            rxbuf=1024, timeout=0)

    def watchdog_start(self, timeout_ms):
        super().watchdog_start(min(timeout_ms, _WATCHDOG_MAX_MS))
