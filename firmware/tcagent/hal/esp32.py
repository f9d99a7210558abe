"""Hardware layer for ESP32 and ESP32-S3 boards."""

import machine

from tcagent.hal.board import BoardHal


class Hal(BoardHal):
    name = "esp32"

    def make_uart(self):
        uart = self.config["uart"]
        return machine.UART(uart["id"], baudrate=uart["baud"], tx=uart["tx"], rx=uart["rx"], rxbuf=1024, timeout=0)
