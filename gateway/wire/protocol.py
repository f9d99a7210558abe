"""The wire contract on the gateway side (docs/protocol.md): verify COSE_Mac0, read events, write acks.

Independent of the firmware's own codecs on purpose: cbor2 and the standard
library's hmac read what the device wrote, so the shared test vector checks
one implementation against the other.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import cbor2

from gateway.errors import GatewayError

__all__ = [
    "EventKey", "Operation", "Verdict", "ProtocolError", "Event", "Signed",
    "verify_mac0", "parse_event", "encode_ack", "decode_cbor", "shown", "storable", "MAX_MESSAGE_BYTES",
    "DEVICE_ID_PATTERN",
]

MAX_MESSAGE_BYTES = 1280
MAX_BATCH_BYTES = 16384
MAX_VERDICTS = 16
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_PROTECTED_ALG_HMAC256 = {1: 5}
_TAG_MAC0 = 17


class EventKey(IntEnum):
    """CBOR map keys of the event (docs/protocol.md, "Event")."""

    VERSION = 0
    DEVICE = 1
    SEQ = 2
    BOOT = 3
    TIME = 4
    UPTIME = 5
    CLOCK = 6
    OP = 7
    RAW = 8
    AIM = 9
    KIND = 10
    CODE = 11
    PID = 12
    SERIAL = 13
    LOT = 14
    EXPIRY = 15
    ERR = 16
    MADE = 17
    TICKET = 18
    SPLIT_QTY = 19


class Operation(IntEnum):
    SALE = 1
    SALE_RETURN = 2
    PURCHASE = 3
    PURCHASE_RETURN = 4
    STOCKTAKE = 5
    DISPENSE = 6
    ADJUST = 7
    """Stock adjustment (库存变更: loss, damage, transfer), uploaded as 3502."""


class Verdict(IntEnum):
    """What the gateway tells the counter about one stored event."""

    OK = 0
    DUPLICATE_SALE = 1
    INVALID_CODE = 2
    UNKNOWN_PRODUCT = 3
    PRODUCT_MISMATCH = 4
    REJECTED = 5


class ProtocolError(GatewayError, ValueError):
    """A message the gateway will not accept; `reason` is the counted, logged category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Signed:
    """A COSE_Mac0 whose tag verified."""

    kid: str
    """The sending device's id, from the unprotected header."""
    payload: bytes
    """The exact signed event bytes, kept as evidence and never re-encoded."""


@dataclass(frozen=True, kw_only=True)
class Event:
    """One scan event, as the device signed it."""

    device: str
    seq: int
    """Per device, from 1, strictly increasing, never reused."""
    boot: int
    time_ms: int
    """Device clock, ms since the Unix epoch; 0 while `clock` is 0 (never synced)."""
    uptime_ms: int
    clock: int
    """0 unsynced, 1 NTP, 2 set by the gateway's time command."""
    op: Operation
    raw: bytes
    """The line as framed: AIM id, GS as 0x1D, suffix removed."""
    aim: str = ""
    kind: int = 0
    """0 other, 1 20-digit, 2 GS1, 3 MA."""
    code: str = ""
    """Canonical form for the platform's drug_trac_codg."""
    pid: str = ""
    serial: str = ""
    lot: str = ""
    expiry: str = ""
    """YYMMDD as printed; day 00 means the end of the month."""
    err: int = 0
    """Decoder error code; 0 is a valid code."""
    made: str = ""
    ticket: str = ""
    split_qty: int = 0
    """Units taken from an opened pack (拆零); 0 for a whole pack."""


def decode_cbor(data: bytes, reason: str, what: str) -> Any:
    """cbor2.loads, where every failure is a ProtocolError(reason): crafted tags and nesting make cbor2 raise
    far more than CBORDecodeError (OverflowError, decimal errors, AssertionError, RecursionError, ...)."""
    try:
        return cbor2.loads(data)
    except Exception as error:  # one hostile message must never escape as a crash of the batch
        raise ProtocolError(reason, f"{what}: {type(error).__name__}: {shown(error)}") from None


def storable(text: str) -> bool:
    """Text both databases can hold: valid UTF-8 (JSON's "\\ud800" makes a lone surrogate, which cannot be
    encoded) and no NUL (PostgreSQL's text refuses it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def shown(value: object, limit: int = 80) -> str:
    """A value for an error message, safely short: a huge integer is not turned into digits (Python refuses
    beyond 4300, and a 2^64-bit one would take long)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = str(value) if isinstance(value, BaseException) else repr(value)
    except Exception as error:  # a repr that fails (e.g. an object a crafted tag made)
        text = f"<{type(value).__name__}: {type(error).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verify_mac0(message: bytes, key_for: Callable[[str], bytes | None], *, topic_device: str) -> Signed:
    """Check `message` against the profile and the key of the device named by its topic."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversized", f"{len(message)} bytes, limit {MAX_MESSAGE_BYTES}")
    item = decode_cbor(message, "malformed_cbor", "COSE_Mac0")
    if not isinstance(item, cbor2.CBORTag) or item.tag != _TAG_MAC0:
        raise ProtocolError("not_mac0", "not a tagged COSE_Mac0 (tag 17)")
    parts = item.value
    if not isinstance(parts, (list, tuple)) or len(parts) != 4:
        raise ProtocolError("not_mac0", "COSE_Mac0 must be an array of 4")
    protected, unprotected, payload, tag = parts
    if not (isinstance(protected, bytes) and isinstance(payload, bytes) and isinstance(tag, bytes)):
        raise ProtocolError("not_mac0", "protected header, payload and tag must be byte strings")
    protected_map = decode_cbor(protected, "not_mac0", "protected header")
    if type(protected_map) is not dict or protected_map != _PROTECTED_ALG_HMAC256:
        raise ProtocolError("not_mac0", f"protected header must be {{1: 5}}, got {shown(protected_map)}")
    kid_bytes = unprotected.get(4) if hasattr(unprotected, "get") else None
    if not isinstance(kid_bytes, bytes):
        raise ProtocolError("not_mac0", "kid (header 4) missing or not bytes")
    kid = kid_bytes.decode("utf-8", "replace")
    if kid != topic_device:
        raise ProtocolError("kid_mismatch", f"kid {kid!r} on the topic of {topic_device!r}")
    key = key_for(kid)
    if key is None:
        raise ProtocolError("unknown_device", f"no key registered for {kid!r}")
    mac_structure = cbor2.dumps(["MAC0", protected, b"", payload])
    expected = hmac.new(key, mac_structure, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, tag):
        raise ProtocolError("bad_mac", f"tag does not verify with the key of {kid!r}")
    return Signed(kid=kid, payload=payload)


_LAST_TIME_MS = 4_102_444_800_000
"""2100-01-01: a device time beyond it is a broken clock, and time arithmetic on it would pass the database's
64-bit integers."""
_TEXT_LIMITS = {
    EventKey.DEVICE: 32, EventKey.AIM: 3, EventKey.CODE: 512, EventKey.PID: 64, EventKey.SERIAL: 64,
    EventKey.LOT: 64, EventKey.EXPIRY: 6, EventKey.MADE: 6, EventKey.TICKET: 40,
}
_UINT_LIMITS = {
    EventKey.VERSION: 1, EventKey.SEQ: 2**63 - 1, EventKey.BOOT: 2**32 - 1, EventKey.TIME: _LAST_TIME_MS,
    EventKey.UPTIME: 2**53, EventKey.CLOCK: 2, EventKey.OP: 7, EventKey.KIND: 3, EventKey.ERR: 255,
    EventKey.SPLIT_QTY: 65535,
}
_RAW_LIMIT = 514
_REQUIRED = frozenset((EventKey.VERSION, EventKey.DEVICE, EventKey.SEQ, EventKey.BOOT, EventKey.TIME,
                       EventKey.UPTIME, EventKey.CLOCK, EventKey.OP, EventKey.RAW, EventKey.KIND, EventKey.ERR))
_FIELD_NAMES = {
    EventKey.TIME: "time_ms", EventKey.UPTIME: "uptime_ms", EventKey.SPLIT_QTY: "split_qty",
}

_FIELDS: dict[int, tuple[str, type, int]] = {
    int(key): ("" if key == EventKey.VERSION else _FIELD_NAMES.get(key, key.name.lower()),
               bytes if key == EventKey.RAW else str if key in _TEXT_LIMITS else int,
               _RAW_LIMIT if key == EventKey.RAW else _TEXT_LIMITS.get(key) or _UINT_LIMITS[key])
    for key in EventKey
}
"""CBOR key -> (the Event field it fills, "" for the version, which is checked, not kept; its type; the
longest text or bytes, or the largest integer). Plain int keys: this runs for every event."""


def parse_event(signed: Signed) -> Event:
    """Read and validate the event map inside a verified message; its device must be the signer."""
    fields = decode_cbor(signed.payload, "malformed_cbor", "event")
    if not isinstance(fields, dict):
        raise ProtocolError("schema", f"event must be a map, got {type(fields).__name__}")
    values: dict[str, Any] = {}
    for key, value in fields.items():
        known = _FIELDS.get(key) if type(key) is int else None
        if known is None:
            raise ProtocolError("schema", f"unknown event key {key!r}")
        name, kind, limit = known
        held = type(value)  # (not narrowing `value` to object)
        if held is not kind or not (0 <= value <= limit if kind is int else len(value) <= limit):
            raise ProtocolError("schema", _field_error(EventKey(key), value))
        if kind is str and not storable(value):  # it would fail the commit
            raise ProtocolError("schema", f"{EventKey(key).name.lower()} holds a NUL or a lone surrogate")
        if name:
            values[name] = value
    if not _REQUIRED.issubset(fields):
        missing = [key.name.lower() for key in sorted(_REQUIRED) if key not in fields]
        raise ProtocolError("schema", f"event lacks {', '.join(missing)}")
    if fields[EventKey.VERSION] != 1:
        raise ProtocolError("schema", f"event schema version {fields[EventKey.VERSION]} is not 1")
    if fields[EventKey.SEQ] < 1 or fields[EventKey.OP] < 1:
        raise ProtocolError("schema", "seq and op start at 1")
    device = fields[EventKey.DEVICE]
    if not DEVICE_ID_PATTERN.fullmatch(device):
        raise ProtocolError("schema", f"device id {device!r} is not [A-Za-z0-9_-]{{1,32}}")
    if device != signed.kid:
        raise ProtocolError("kid_mismatch", f"event of {device!r} signed by {signed.kid!r}")
    values["op"] = Operation(fields[EventKey.OP])
    return Event(**values)


def _field_error(key: EventKey, value: object) -> str:
    if key == EventKey.RAW:
        return f"raw must be at most {_RAW_LIMIT} bytes"
    if key in _TEXT_LIMITS:
        return f"{key.name.lower()} must be text of at most {_TEXT_LIMITS[key]}"
    return f"{key.name.lower()} must be an integer 0..{_UINT_LIMITS[key]}, got {shown(value)}"


def encode_ack(acked_seq: int, verdicts: list[tuple[int, Verdict]]) -> bytes:
    """The ack for a device: highest contiguous stored seq, and verdicts for the newest events just stored.

    At most MAX_VERDICTS verdicts, the newest: they are for the cashier at the counter, and a drained
    backlog must not turn into an ack too big for a device's heap.
    """
    ack: dict[int, object] = {0: 1, 1: acked_seq}
    if verdicts:
        ack[2] = [[seq, int(verdict)] for seq, verdict in verdicts[-MAX_VERDICTS:]]
    return cbor2.dumps(ack, canonical=True)
