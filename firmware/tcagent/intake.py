"""Scan intake: frame the scan engine's byte stream into lines, drop re-reads, read control barcodes.

Pure logic over bytes and millisecond timestamps: the hardware layer feeds it.
"""

from tcagent.codec.codes import MAX_LINE
from tcagent.codec.compat import const

_TOO_LONG = MAX_LINE + 3  # one past what codes.decode accepts, so the decoder reports too_long
CONTROL_PREFIX = b"TC:"
CONTROL_MODE = const(1)
CONTROL_TICKET = const(2)
CONTROL_SPLIT_QTY = const(3)
MODE_NAMES = ("", "SALE", "RETURN", "PURCHASE", "PURCHASE-RETURN", "STOCKTAKE", "DISPENSE", "ADJUST")


class LineFramer:
    """Split a byte stream on any of the suffix bytes; a partial line is taken after `timeout_ms` of silence.

    Empty lines (the LF of a CR LF) are skipped. A line longer than codes.MAX_LINE is handed on
    cut to MAX_LINE + 3 bytes, which the decoder reports as too_long, and the rest up to the
    next suffix is dropped.
    """

    def __init__(self, suffix=b"\r\n", timeout_ms=200):
        self.terminators = bytes(suffix)
        self.timeout_ms = timeout_ms
        self._line = bytearray(_TOO_LONG)
        self._length = 0
        self._discarding = False
        self._last_ms = 0
        self.overlong = 0  # lines cut for being too long
        self.timeouts = 0  # partial lines taken after silence

    def feed(self, data, now_ms, emit):
        """Take bytes read at `now_ms`; call `emit(line)` for each complete line."""
        line = self._line
        for byte in data:
            if byte in self.terminators:
                if self._length and not self._discarding:
                    emit(bytes(memoryview(line)[: self._length]))
                self._length = 0
                self._discarding = False
            elif not self._discarding:
                line[self._length] = byte
                self._length += 1
                if self._length == _TOO_LONG:
                    self.overlong += 1
                    emit(bytes(line))
                    self._length = 0
                    self._discarding = True
        if len(data):
            self._last_ms = now_ms

    def poll(self, now_ms, emit, ticks_diff):
        """Hand on a partial line once the engine has been silent for `timeout_ms`."""
        if self._length and ticks_diff(now_ms, self._last_ms) >= self.timeout_ms:
            self.timeouts += 1
            emit(bytes(memoryview(self._line)[: self._length]))
            self._length = 0
        elif self._discarding and ticks_diff(now_ms, self._last_ms) >= self.timeout_ms:
            self._discarding = False


class Debouncer:
    """Drop an identical re-read within `window_ms` of the previous read of the same line (sliding)."""

    def __init__(self, window_ms=1500):
        self.window_ms = window_ms
        self._last = b""
        self._last_ms = 0
        self.dropped = 0

    def repeat(self, line, now_ms, ticks_diff):
        """True when `line` is a re-read to drop; remembers the read either way."""
        again = line == self._last and ticks_diff(now_ms, self._last_ms) < self.window_ms
        self._last = line
        self._last_ms = now_ms
        if again:
            self.dropped += 1
        return again


def control(line):
    """Read a control barcode: (CONTROL_*, value), (0, reason) for a malformed one, None for a scan.

    TC:MODE:SALE (or the op number 1-7; ADJUST, 7, books stock adjustments: losses, damage, transfers),
    TC:TKT:<ticket number, empty to clear>, TC:QTY:<units 1-9999>,
    with or without an AIM identifier in front.
    """
    # an engine with AIM identifiers on sends "]C0TC:..." for a printed control barcode
    start = 3 if len(line) > 3 and line[0] == 0x5D else 0
    if not line.startswith(CONTROL_PREFIX, start):
        return None
    text = line[start + len(CONTROL_PREFIX):].decode("ascii", "ignore") if _ascii(line) else ""
    split = text.find(":")
    key = text[:split] if split >= 0 else text
    value = text[split + 1 :] if split >= 0 else ""
    if key == "MODE":
        if value in MODE_NAMES[1:]:
            return CONTROL_MODE, MODE_NAMES.index(value)
        if len(value) == 1 and "1" <= value <= "7":
            return CONTROL_MODE, int(value)
        return 0, "unknown mode %r" % value
    if key == "TKT":
        if len(value) <= 40:
            return CONTROL_TICKET, value
        return 0, "ticket number over 40 characters"
    if key == "QTY":
        if 1 <= len(value) <= 4 and _digits(value) and int(value) > 0:
            return CONTROL_SPLIT_QTY, int(value)
        return 0, "split quantity must be 1-9999"
    return 0, "unknown control barcode"


def _ascii(data):
    for byte in data:
        if byte > 0x7E or byte < 0x20:
            return False
    return True


def _digits(text):
    for char in text:
        if not "0" <= char <= "9":
            return False
    return True
