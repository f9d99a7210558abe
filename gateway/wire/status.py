"""The retained status map a device publishes on `tc/v1/<dev>/status` (docs/protocol.md, "Status")."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.wire.protocol import ProtocolError, decode_cbor, shown, storable

__all__ = ["Status", "parse_status", "ALARM_JOURNAL_FULL", "ALARM_CLOCK"]

ALARM_JOURNAL_FULL = 1
"""Bit of `alarms`: the journal is full (the device refuses scans)."""
ALARM_CLOCK = 2
"""Bit of `alarms`: the clock was never set since boot."""
_FIELDS = {2: "firmware", 3: "uptime_s", 4: "backlog", 5: "free_heap", 6: "acked_seq", 7: "clock", 8: "last_seq",
           9: "boot", 10: "journal_used", 11: "journal_capacity", 12: "alarms", 13: "mode"}


@dataclass(frozen=True, kw_only=True)
class Status:
    device: str
    online: bool
    firmware: str = ""
    uptime_s: int = 0
    backlog: int = 0
    free_heap: int = 0
    acked_seq: int = 0
    clock: int = 0
    last_seq: int = 0
    boot: int = 0
    journal_used: int = 0
    journal_capacity: int = 0
    alarms: int = 0
    mode: int = 0


def parse_status(device: str, payload: bytes) -> Status:
    """Read a status map; ProtocolError("status_malformed") when it is not one."""
    if len(payload) > 1024:
        raise ProtocolError("oversized", f"status of {len(payload)} bytes, limit 1024")
    fields = decode_cbor(payload, "status_malformed", "status")
    if not isinstance(fields, dict) or fields.get(0) != 1 or not isinstance(fields.get(1), bool):
        raise ProtocolError("status_malformed", "expected a version 1 map with the online flag (key 1)")
    values: dict[str, object] = {}
    for key, name in _FIELDS.items():
        if key in fields:
            value = fields[key]
            if name == "firmware":
                good = isinstance(value, str) and storable(value)
            else:  # a database integer holds at most 2^63-1
                good = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
            if not good:
                raise ProtocolError("status_malformed", f"key {key} ({name}) has {shown(value)}")
            values[name] = value[:32] if isinstance(value, str) else value
    return Status(device=device, online=fields[1], **values)  # type: ignore[arg-type]
