"""Hardware layer shared by the microcontroller boards (ESP32, Raspberry Pi Pico W).

UART scan engine, buzzer (PWM) and LEDs on the provisioned pins, Wi-Fi station,
NTP time, hardware watchdog. esp32.py and rp2.py hold what differs.
"""

import asyncio
import gc
import time

import machine
import network

from tcagent import event, feedback
from tcagent.compat import ticks_diff, ticks_ms
from tcagent.hal import BaseHal

_EPOCH_OFFSET_S = 946684800 if time.gmtime(0)[0] == 2000 else 0  # some ports count from 2000-01-01
_WIFI_TIMEOUT_MS = 15000


class UartPort:
    """The scan engine on a UART, read through asyncio."""

    def __init__(self, uart):
        self._stream = asyncio.StreamReader(uart)

    async def read(self, buffer):
        data = await self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class BoardHal(BaseHal):
    """The interface of unix.Hal on a microcontroller."""

    name = "board"

    def __init__(self, config):
        super().__init__(config, event.CLOCK_UNSYNCED)
        self._wdt = None
        self._wlan = network.WLAN(network.STA_IF)
        pins = config["pins"]
        self._buzzer = machine.PWM(machine.Pin(pins["buzzer"]), freq=2700, duty_u16=0) if pins["buzzer"] >= 0 else None
        self._leds = {}
        for colour in ("green", "red", "amber"):
            number = pins["led_" + colour]
            if number >= 0:
                self._leds[colour] = machine.Pin(number, machine.Pin.OUT, value=0)
        self._playing = None

    def make_uart(self):
        """The board's UART object for the scan engine (esp32.py, rp2.py)."""
        raise NotImplementedError

    def _clock_ms(self):
        return (time.time() + _EPOCH_OFFSET_S) * 1000

    async def sync_clock(self):
        """Set the RTC from NTP once per connection, unless the gateway already set the time."""
        if self.clock == event.CLOCK_GATEWAY:
            return
        try:
            import ntptime

            ntptime.host = self.config["ntp_host"]
            ntptime.settime()
            self._offset_ms = 0
            self.clock = event.CLOCK_NTP
        except (OSError, OverflowError) as error:
            print("log ntp: %s" % error)

    # ---- devices ----
    def open_scanner(self):
        return UartPort(self.make_uart())

    def signal(self, name, detail=""):
        print("signal %s %s" % (name, detail))
        if self._playing is not None:
            self._playing.cancel()
        count = int(detail) if name == feedback.MODE else 0
        self._playing = asyncio.create_task(self._play(feedback.pattern(name, count)))

    async def _play(self, steps):
        try:
            for buzz_ms, colour, light_ms, pause_ms in steps:
                led = self._leds.get(colour)
                if led is not None:
                    led.value(1)
                if buzz_ms and self._buzzer is not None:
                    self._buzzer.duty_u16(32768)
                await asyncio.sleep_ms(min(buzz_ms, light_ms) if buzz_ms else light_ms)
                if self._buzzer is not None:
                    self._buzzer.duty_u16(0)
                await asyncio.sleep_ms(max(light_ms - buzz_ms, 0))
                if led is not None:
                    led.value(0)
                await asyncio.sleep_ms(pause_ms)
        finally:
            if self._buzzer is not None:
                self._buzzer.duty_u16(0)
            for led in self._leds.values():
                led.value(0)

    async def connect_network(self):
        """Join the configured Wi-Fi; False after a timeout (the link backs off and tries again)."""
        wlan = self._wlan
        if wlan.isconnected():
            return True
        wlan.active(True)
        wlan.connect(self.config["wifi_ssid"], self.config["wifi_password"])
        started = ticks_ms()
        while not wlan.isconnected():
            if ticks_diff(ticks_ms(), started) > _WIFI_TIMEOUT_MS:
                print("log wifi: no connection to %s" % self.config["wifi_ssid"])
                return False
            await asyncio.sleep_ms(200)
        return True

    def watchdog_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def watchdog_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def free_heap(self):
        gc.collect()  # headroom, not garbage: called only for the status message
        return gc.mem_free()

    def reboot(self):
        machine.reset()
