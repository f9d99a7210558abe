"""POS sale tickets: read them, store them, and match sale scans to their lines.

A ticket arrives as JSON (HTTP `POST /api/v1/tickets` or MQTT `tc/v1/pos/<terminal>/ticket`):

    {"number": "T20261122-0001", "terminal": "T01", "time": "2026-11-22T10:15:00+08:00",
     "institution": "P44030000001",
     "lines": [{"list_code": "XA01", "quantity": 2}, {"list_code": "XB02", "quantity": 3, "split": true}]}

`quantity` counts packs on a whole-pack line and units on a split (拆零) line. `time` is
ISO 8601 (without an offset it is read in the configured time zone) or ms since the
epoch. `institution` may be left out when a registered device serves the terminal. An optional `platform` object
carries sale fields only the POS knows, for the platform upload (POS_FIELDS: mdtrt_sn, setl_id, ...).
A ticket sent again with the same content is accepted once; with other content it is
refused (`ticket_conflict`).

Which scans a ticket's lines take, in either order of arrival, is `gateway.domain.matching`'s job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.domain import catalog, matching, rates
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.protocol import shown, storable

__all__ = ["TicketLine", "Ticket", "TicketError", "parse_ticket", "parse_time", "record_ticket"]


POS_FIELDS = ("mdtrt_sn", "setl_id", "psn_no", "psn_name", "prsc_dr_name", "phar_name", "phar_prac_cert_no",
              "rx_flag", "rxno", "medins_prod_sel_no", "memo")
"""3505/3506 row fields a ticket may carry in its `platform` object."""


class TicketError(ValueError):
    """A ticket that cannot be accepted; `reason` is ticket_invalid, ticket_conflict or unknown_terminal."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message


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


def record_ticket(tx: Tx, tally: rates.HourlyDeltas, ticket: Ticket, rules: Rules, *,
                  received_ms: int) -> tuple[int, bool]:
    """Store a ticket and claim the scans already waiting for it; (ticket id, newly stored). Rates go to `tally`."""
    digest = ticket.digest()
    existing = tx.one("SELECT id, digest FROM tickets WHERE terminal = ? AND number = ?",
                      (ticket.terminal, ticket.number))
    if existing is not None:
        if bytes(existing[1]) != digest:
            raise TicketError("ticket_conflict", f"ticket {ticket.number} of terminal {ticket.terminal} was "
                              "already recorded with other content")
        return int(existing[0]), False
    institution = ticket.institution
    if not institution:
        row = tx.one("SELECT institution FROM devices WHERE terminal = ? LIMIT 1", (ticket.terminal,))
        if row is None:
            raise TicketError("unknown_terminal", f"terminal {ticket.terminal!r} has no registered device; "
                              "give the ticket's institution")
        institution = row[0]
    row = tx.one("INSERT INTO tickets (terminal, institution, number, time_ms, received_ms, digest, platform) "
                 "VALUES (?,?,?,?,?,?,?) RETURNING id",
                 (ticket.terminal, institution, ticket.number, ticket.time_ms, received_ms, digest,
                  json.dumps(dict(ticket.platform), ensure_ascii=False)))
    assert row is not None
    ref = matching.TicketRef(int(row[0]), institution, ticket.terminal, ticket.number, ticket.time_ms)
    required_units = 0
    for line_no, line in enumerate(ticket.lines, start=1):
        required = catalog.line_requires_code(tx, line.list_code)
        needed = 1 if line.split else line.quantity
        required_units += needed if required else 0
        tx.write("INSERT INTO ticket_lines (ticket_id, line_no, list_code, quantity, split, required, needed, "
                   "due_ms) VALUES (?,?,?,?,?,?,?,?)",
                   (ref.id, line_no, line.list_code, line.quantity, int(line.split), int(required), needed,
                    ticket.time_ms + rules.unscanned_after_s * 1000))
    tally.add(institution, ticket.terminal, ticket.time_ms, units_required=required_units)
    matching.claim(tx, tally, ref, rules, received_ms=received_ms)
    return ref.id, True
