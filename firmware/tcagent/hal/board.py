"""Hardware layer shared by the microcontroller boards (ESP32, Raspberry Pi Pico and Pico W).

UART scan engine, buzzer (PWM) and LEDs on the provisioned pins, Wi-Fi station when the board
has one, NTP time, hardware watchdog. esp32.py and rp2.py hold what differs.

`network` and `ntptime` are imported when first needed, and only if the firmware has them: a Pico
without radio has neither, and runs everything but the link (scanning, journal, feedback, status).
"""

import asyncio
import gc
import time

import machine

from tcagent import feedback
from tcagent.codec import event
from tcagent.codec.compat import const
from tcagent.compat import sleep_ms, ticks_diff, ticks_ms
from tcagent.hal import BaseHal

_EPOCH_OFFSET_S = 946684800 if time.gmtime(0)[0] == 2000 else 0  # some ports count from 2000-01-01
_WIFI_TIMEOUT_MS = const(15000)
_WIFI_POLL_MS = const(200)
_UART_POLL_MS = const(20)
_HALT_REPEAT_MS = const(10000)
_HALT_BLINK_MS = const(250)  # a 9600-baud scan engine fills 20 ms with 19 bytes; the UART buffers 1024
# The clock floor when the config has none (clock_floor_s 0): this firmware's date, 2026-11-01 UTC. Raise it at
# each release; trace-provision writes the enrolment date, which is later still.
FIRMWARE_DATE_S = const(1793491200)
# network.STAT_* names of a failed join (rp2: -1..-3; esp32: 200..204), with what to tell the technician
_JOIN_FAILURES = (("STAT_WRONG_PASSWORD", "wrong password"), ("STAT_NO_AP_FOUND", "no access point of that name"),
                  ("STAT_CONNECT_FAIL", "connection failed"), ("STAT_ASSOC_FAIL", "association refused"),
                  ("STAT_HANDSHAKE_TIMEOUT", "handshake timed out"), ("STAT_BEACON_TIMEOUT", "access point lost"))


def halt(reason):
    """Say `reason` and what to do every 10 s, blinking the board's own LED, for ever (Ctrl-C gives the REPL).

    For a board that cannot start the agent (no config.json, or a wrong one): returning would end main.py, and a
    `sys.exit` there soft-reboots into main.py again at once, a loop that hides the reason and fights mpremote.
    """
    try:
        led = machine.Pin("LED", machine.Pin.OUT)  # the Pico's GP25, the Pico W's radio-driven LED
    except (TypeError, ValueError):
        led = None  # a board without a named LED
    while True:
        print(reason)
        print("log agent: not started; waiting for a valid config.json (copy it with `trace-flash pico"
              " --skip-firmware --config ...` or `mpremote cp config.json :`, then reset the board)")
        for blink in range(_HALT_REPEAT_MS // _HALT_BLINK_MS):
            if led is not None:
                led.value(blink & 1)
            time.sleep_ms(_HALT_BLINK_MS)


class UartPort:
    """The scan engine on a UART, polled into the caller's buffer (nothing is allocated per read)."""

    def __init__(self, uart):
        self._uart = uart

    async def read(self, buffer):
        uart = self._uart
        while True:
            count = uart.readinto(buffer)  # timeout=0: None at once when nothing waits
            if count:
                return count
            await sleep_ms(_UART_POLL_MS)


def _join_failure(network, status):
    """Why a Wi-Fi join failed, from `wlan.status()`; "" while it may still succeed."""
    for name, reason in _JOIN_FAILURES:
        if getattr(network, name, None) == status:
            return reason
    return ""


class BoardHal(BaseHal):
    """The interface of unix.Hal on a microcontroller."""

    name = "board"

    def __init__(self, config):
        super().__init__(config, event.CLOCK_UNSYNCED)
        self._wdt = None
        self._network = None  # whether the firmware has Wi-Fi, once looked for
        self._wlan = None
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

    def _set_rtc(self, unix_s):
        tm = time.gmtime(unix_s - _EPOCH_OFFSET_S)
        machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))

    def set_time(self, epoch_ms):
        """The gateway's time command: the RTC follows it, so the next TLS handshake sees the date too."""
        self._set_rtc(epoch_ms // 1000)
        super().set_time(epoch_ms)

    async def sync_clock(self):
        """Set the clock from NTP before the link connects (TLS checks the broker certificate's dates).

        One NTP try (ntptime's 1 s timeout) per connection attempt, so the link's backoff paces the retries; a
        gateway-set clock is kept. An answer before the floor (clock_floor_s, or the firmware's date) is refused.
        When NTP fails and the clock reads before the floor (the board lost power), the clock is put at the
        floor, so a certificate valid then passes; events keep saying "unsynced" until NTP or the gateway's
        time command (docs/firmware.md, "Clock").
        """
        if self.clock == event.CLOCK_GATEWAY:
            return
        floor_s = self.config["clock_floor_s"] or FIRMWARE_DATE_S
        host = self.config["ntp_host"]
        try:
            import ntptime

            ntptime.host = host
            unix_s = ntptime.time() + _EPOCH_OFFSET_S
            if unix_s < floor_s:
                raise ValueError("answer %d is before the clock floor %d" % (unix_s, floor_s))
            self._set_rtc(unix_s)
            self._offset_ms = 0
            self.clock = event.CLOCK_NTP
            return
        except Exception as error:  # the NTP boundary: no module, no answer, a short or absurd answer
            print("log ntp %s: %s %s" % (host, type(error).__name__, error))
        if time.time() + _EPOCH_OFFSET_S < floor_s:
            self._set_rtc(floor_s)
            print("log clock: no NTP, clock put at its floor %d for the certificate check; events stay unsynced"
                  % floor_s)

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
                await sleep_ms(min(buzz_ms, light_ms) if buzz_ms else light_ms)
                if self._buzzer is not None:
                    self._buzzer.duty_u16(0)
                await sleep_ms(max(light_ms - buzz_ms, 0))
                if led is not None:
                    led.value(0)
                await sleep_ms(pause_ms)
        finally:
            if self._buzzer is not None:
                self._buzzer.duty_u16(0)
            for led in self._leds.values():
                led.value(0)

    def network_available(self):
        """False when this firmware has no Wi-Fi (a Pico without radio: no `network` module)."""
        if self._network is None:
            try:
                import network

                self._network = hasattr(network, "WLAN")
            except ImportError:
                self._network = False
        return self._network

    async def connect_network(self):
        """Join the configured Wi-Fi; False when the join failed or timed out (the link backs off, tries again).

        Nothing the radio does escapes: `active()`, `connect()` or `disconnect()` raising OSError (the driver
        does while the radio starts, or when it is wedged) and a status that says the join failed (wrong
        password, no such network) are logged and answered False.
        """
        if not self.network_available():
            return False
        import network  # there, network_available() found it

        ssid = self.config["wifi_ssid"]
        try:
            if self._wlan is None:
                self._wlan = network.WLAN(network.STA_IF)
            wlan = self._wlan
            if wlan.isconnected():
                return True
            wlan.active(True)
            wlan.connect(ssid, self.config["wifi_password"])
            started = ticks_ms()
            while not wlan.isconnected():
                failure = _join_failure(network, wlan.status())
                if failure or ticks_diff(ticks_ms(), started) > _WIFI_TIMEOUT_MS:
                    print("log wifi %s: %s" % (ssid, failure or "no connection within %d ms" % _WIFI_TIMEOUT_MS))
                    wlan.disconnect()  # stop the driver's own retries: the next attempt starts afresh
                    return False
                await sleep_ms(_WIFI_POLL_MS)
            return True
        except OSError as error:
            print("log wifi %s: radio error %s" % (ssid, error))
            return False

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
