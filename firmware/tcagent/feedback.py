"""What the cashier sees and hears for each signal: one table, played by every board's hardware layer.

A pattern is a tuple of (buzzer on ms, led, light ms, pause ms) steps; led is one of
"green", "red", "amber" or "" (none). The unix port prints the signal instead.
"""

TAKEN = "taken"  # on flash: the scan counts
OK = "ok"  # gateway stored it, nothing to remark
INVALID = "invalid"  # not a valid trace code (decoded here, or the gateway says so)
DUPLICATE = "duplicate"  # code already sold
UNKNOWN_PRODUCT = "unknown_product"
MISMATCH = "mismatch"  # scanned product differs from the ticket line
REJECTED = "rejected"  # the gateway quarantined the event (bad MAC: check provisioning)
FULL = "full"  # journal full: the scan was NOT taken
OFFLINE = "offline"
ONLINE = "online"
MODE = "mode"  # operation mode changed; blinks the mode number
CONTROL = "control"  # a control barcode (ticket number, split quantity) was read
ERROR = "error"  # a control barcode or command that could not be applied

PATTERNS = {
    TAKEN: ((60, "green", 120, 0),),
    OK: ((0, "green", 300, 0),),
    INVALID: ((400, "red", 600, 0),),
    DUPLICATE: ((120, "amber", 200, 80), (120, "amber", 200, 0)),
    UNKNOWN_PRODUCT: ((80, "amber", 150, 60), (80, "amber", 150, 60), (80, "amber", 150, 0)),
    MISMATCH: ((250, "amber", 300, 100), (250, "amber", 300, 0)),
    REJECTED: ((400, "red", 400, 100), (400, "red", 400, 0)),
    FULL: ((700, "red", 700, 150), (700, "red", 700, 150), (700, "red", 700, 0)),
    OFFLINE: ((0, "amber", 1000, 0),),
    ONLINE: ((0, "green", 100, 0),),
    CONTROL: ((40, "green", 60, 60), (40, "green", 60, 0)),
    ERROR: ((150, "red", 150, 80), (150, "red", 150, 0)),
}
# gateway verdict code (docs/protocol.md) -> signal
VERDICTS = (OK, DUPLICATE, INVALID, UNKNOWN_PRODUCT, MISMATCH, REJECTED)


def pattern(signal, count=0):
    """The steps for `signal`; MODE blinks green `count` times."""
    if signal == MODE:
        return ((50, "green", 150, 150),) * count
    return PATTERNS[signal]
