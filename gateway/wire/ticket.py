"""A POS sale ticket as it arrives: JSON over HTTP (`POST /api/v1/tickets`) or MQTT (`tc/v1/pos/<terminal>/ticket`).

What a ticket holds and which forms are refused is described in gateway/domain/tickets.py, which stores it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError
from gateway.wire.protocol import shown, storable

__all__ = ["TicketLine", "Ticket", "TicketError", "parse_ticket", "parse_time", "POS_FIELDS"]


POS_FIELDS = ("mdtrt_sn", "setl_id", "psn_no", "psn_name", "prsc_dr_name", "phar_name", "phar_prac_cert_no",
              "rx_flag", "rxno", "medins_prod_sel_no", "memo")
"""3505/3506 row fields a ticket may carry in its `platform` object."""


class TicketError(GatewayError, ValueError):
    """A ticket that cannot be accepted; `reason` is ticket_invalid, ticket_conflict or unknown_terminal."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message
        self.kind = "conflict" if reason == "ticket_conflict" else "invalid"


@dataclass(frozen=True)
class TicketLine:
    list_code: str
    quantity: int
    """Packs on a whole-pack line, units on a split line."""
    split: bool = False


@dataclass(frozen=True, kw_only=True)
class Ticket:
    number: str
    terminal: str
    time_ms: int
    lines: tuple[TicketLine, ...]
    institution: str = ""
    platform: tuple[tuple[str, str], ...] = ()
    """Sale fields only the POS knows, for the platform's 3505 row (mdtrt_sn, setl_id, prsc_dr_name, ...)."""

    def digest(self) -> bytes:
        content = [self.number, self.terminal, self.time_ms, self.institution,
                   [[line.list_code, line.quantity, line.split] for line in self.lines], list(self.platform)]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).digest()


def _text(data: Mapping[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value) or len(value) > limit or not storable(value):
        raise TicketError("ticket_invalid", f"{key} must be text of 1-{limit} characters (UTF-8, no NUL), got "
                          f"{shown(value)}")
    return value


EARLIEST_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: no POS sold a traceable box before."""
LATEST_MS = 4_102_444_800_000
"""2100-01-01T00:00:00Z: later is a broken clock or a crafted number (and must not overflow a 64-bit column)."""


def parse_time(value: object, timezone: str) -> int:
    """ms since the epoch from ISO 8601 (no offset: `timezone`) or from ms, from 2000 to 2099; TicketError otherwise.

    >>> parse_time("2026-11-22T09:00:00+08:00", "UTC")
    1795309200000
    >>> parse_time(1795309200000, "UTC")
    1795309200000
    """
    time_ms: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        time_ms = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(timezone))
            time_ms = int(moment.timestamp() * 1000)
    if time_ms is None:
        raise TicketError("ticket_invalid", f"time must be ISO 8601 or ms since the epoch, got {value!r:.60}")
    if not EARLIEST_MS <= time_ms < LATEST_MS:
        raise TicketError("ticket_invalid", f"time must be from 2000 to 2099, got {value!r:.60}")
    return time_ms


def parse_ticket(data: object, *, timezone: str = "Asia/Shanghai") -> Ticket:
    """A Ticket from decoded JSON; TicketError naming the first bad field."""
    if not isinstance(data, Mapping):
        raise TicketError("ticket_invalid", f"a ticket is a JSON object, got {type(data).__name__}")
    unknown = set(data) - {"number", "terminal", "time", "institution", "lines", "platform"}
    if unknown:
        raise TicketError("ticket_invalid", f"unknown keys {sorted(unknown)}")
    raw_lines = data.get("lines")
    if not isinstance(raw_lines, list) or not 1 <= len(raw_lines) <= 200:
        raise TicketError("ticket_invalid", "lines must be a list of 1-200 lines")
    lines = []
    for index, line in enumerate(raw_lines, start=1):
        if not isinstance(line, Mapping) or set(line) - {"list_code", "quantity", "split"}:
            raise TicketError("ticket_invalid", f"line {index}: an object of list_code, quantity, split")
        quantity = line.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 100_000:
            raise TicketError("ticket_invalid", f"line {index}: quantity must be a whole number 1-100000")
        split = line.get("split", False)
        if not isinstance(split, bool):
            raise TicketError("ticket_invalid", f"line {index}: split must be true or false")
        lines.append(TicketLine(_text(line, "list_code", 50), quantity, split))
    platform = data.get("platform", {})
    if not isinstance(platform, Mapping) or not all(
            key in POS_FIELDS and isinstance(value, str) and len(value) <= 200 and storable(value)
            for key, value in platform.items()):
        raise TicketError("ticket_invalid", f"platform must map some of {', '.join(POS_FIELDS)} to text")
    return Ticket(number=_text(data, "number", 40), terminal=_text(data, "terminal", 64),
                  time_ms=parse_time(data.get("time"), timezone), lines=tuple(lines),
                  institution=_text(data, "institution", 64, required=False),
                  platform=tuple(sorted(platform.items())))
