"""A small fake of MicroPython's `machine` for running the board layer on the unix port and CPython (tests only).

It follows the documented behaviour the agent relies on (docs.micropython.org, library/machine.*.html and the
rp2 and esp32 quick references): UART.readinto returns the count or None when nothing waits (timeout=0); the
rp2 port refuses a TX or RX pin that is not that UART's in the RP2040's pin-function table ("bad TX pin");
the RP2040 watchdog refuses more than 8388 ms; RTC.datetime takes and gives (year, month, day, weekday,
hours, minutes, seconds, subseconds); reset() does not return. What happened is kept in LOG for the test.
"""

import time

try:
    from time import ticks_ms
except ImportError:  # CPython

    def ticks_ms():
        return time.monotonic_ns() // 1000000


BOARD = {"platform": "rp2", "radio": True}  # set by the harness before the board layer is imported
LOG = []  # ("pin", n, value) ("pwm", n, duty) ("wdt", timeout) ("feed",) ("rtc", tuple) ("reset",) ("uart", id, ...)
UARTS = {}  # id -> the UART the board layer opened
_RP2_TX = {0: (0, 12, 16, 28), 1: (4, 8, 20, 24)}  # RP2040 datasheet, GPIO function F2
_RP2_RX = {0: (1, 13, 17, 29), 1: (5, 9, 21, 25)}


class Reset(BaseException):
    """machine.reset() was called: the board would restart here."""


def reset():
    LOG.append(("reset",))
    raise Reset()


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, number, mode=-1, value=None):
        self.number = number
        self._value = 0
        if value is not None:
            self.value(value)

    def value(self, value=None):
        if value is None:
            return self._value
        self._value = 1 if value else 0
        LOG.append(("pin", self.number, self._value))
        return None


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin = pin
        self.freq = freq
        self.duty_u16(duty_u16)

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        self._duty = value
        LOG.append(("pwm", self.pin.number, value))
        return None


class UART:
    def __init__(self, uart_id, baudrate=9600, tx=None, rx=None, rxbuf=256, timeout=0):
        if BOARD["platform"] == "rp2":
            if uart_id not in (0, 1):
                raise ValueError("UART " + str(uart_id) + " does not exist")
            if tx is not None and tx.number not in _RP2_TX[uart_id]:
                raise ValueError("bad TX pin")
            if rx is not None and rx.number not in _RP2_RX[uart_id]:
                raise ValueError("bad RX pin")
        self.id = uart_id
        self.waiting = bytearray()
        self.fault = None  # an exception readinto raises (a test's way to break the port)
        LOG.append(("uart", uart_id, baudrate, getattr(tx, "number", tx), getattr(rx, "number", rx)))
        UARTS[uart_id] = self

    def readinto(self, buffer):
        if self.fault is not None:
            raise self.fault
        count = min(len(buffer), len(self.waiting))
        if not count:
            return None  # timeout=0 and nothing there
        buffer[:count] = self.waiting[:count]
        self.waiting = self.waiting[count:]
        return count

    def any(self):
        return len(self.waiting)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if BOARD["platform"] == "rp2" and timeout > 8388:
            raise ValueError("timeout exceeds 8388 ms")
        LOG.append(("wdt", timeout))

    def feed(self):
        LOG.append(("feed",))


def _days(year, month, day):
    """Days from 1970-01-01 to the given date (proleptic Gregorian)."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468


class _Clock:
    """The RTC's time, running from where it was last set; stands in for the board's `time` module."""

    def __init__(self):
        self.base_s = _days(2021, 1, 1) * 86400  # the rp2 port's RTC after power-up
        self.set_at_ms = ticks_ms()

    def time(self):
        return self.base_s + (ticks_ms() - self.set_at_ms) // 1000

    def gmtime(self, seconds=None):
        return time.gmtime(self.time() if seconds is None else seconds)


CLOCK = _Clock()


class RTC:
    def datetime(self, when=None):
        if when is None:
            tm = time.gmtime(CLOCK.time())
            return (tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0)
        LOG.append(("rtc", tuple(when)))
        CLOCK.base_s = _days(when[0], when[1], when[2]) * 86400 + when[4] * 3600 + when[5] * 60 + when[6]
        CLOCK.set_at_ms = ticks_ms()
        return None
