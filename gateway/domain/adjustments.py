"""Stock adjustments entered through the API (3502, inventory change): losses, damage, transfers and the like
that an institution books by document rather than by scanning at a counter.

A scanned adjustment is an event like any other (the device's ADJUST mode, op 7) and goes up through the outbox
as one 3502 row per scan. An adjustment posted to the API is one 3502 row with its codes, kept here: recorded
once per institution and document `number` (the same document again is answered as a repeat, other content under
the same number is refused), planned by the forwarder as a request of its own (`fixmedins_bchno` TCA<id>), and
settled like the outbox's rows: done when the platform accepts it, dead with the platform's reason when it
refuses. States: pending, sending, done, dead, withdrawn (an operator's 3507). The inventory change type
(`inv_chg_type`) and price (`pric`) come from the document or forward.defaults: the platform's list of change
types is not published (docs/platform.md), so the gateway passes the code through unchecked but for its length.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError
from gateway.store.base import Tx
from gateway.wire.protocol import storable
from gateway.wire.ticket import parse_time

__all__ = ["Adjustment", "AdjustmentError", "parse_adjustment", "record", "due", "sending", "settle", "withdrawn",
           "state_counts", "rows_held_as"]

_DECIMAL_LIMIT = decimal.Decimal("1e12")
_PLACES = decimal.Decimal("0.0001")


class AdjustmentError(GatewayError, ValueError):
    """A document the API refuses: `invalid` (a field), `conflict` (its number was used for other content)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Adjustment:
    """One inventory change document as posted."""

    institution: str
    number: str
    """The institution's document number, unique per institution."""
    list_code: str
    codes: tuple[str, ...]
    """The trace codes of the packs it concerns (one per pack; of the opened pack for a split change)."""
    count: str
    """Quantity in the smallest priced unit: packs, or units when `split`."""
    split: bool
    time_ms: int
    chg_type: str = ""
    """inv_chg_type; empty: forward.defaults."""
    price: str = ""
    """pric; empty: forward.defaults."""
    operator: str = ""
    memo: str = ""


def _text(data: Mapping[str, Any], key: str, limit: int, *, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value) or len(value) > limit or not storable(value):
        raise AdjustmentError("invalid", f"{key} must be text of {1 if required else 0}-{limit} characters")
    return value


def _decimal(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    try:
        number = decimal.Decimal(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else None
    except decimal.InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not 0 <= number < _DECIMAL_LIMIT or number != number.quantize(
            _PLACES):
        raise AdjustmentError("invalid", f"{key} must be a non-negative number with at most 4 decimals, got "
                              f"{str(value)[:40]!r}")
    return format(number.normalize(), "f")  # one spelling per value: "1e2" and "100.00" are both "100"


def parse_adjustment(data: object, *, timezone: str) -> Adjustment:
    """An Adjustment from decoded JSON; AdjustmentError naming the first bad field."""
    if not isinstance(data, Mapping):
        raise AdjustmentError("invalid", "an adjustment must be a JSON object")
    codes = data.get("codes")
    if not isinstance(codes, list) or not 1 <= len(codes) <= 100 or not all(
            isinstance(code, str) and 1 <= len(code) <= 100 and storable(code) for code in codes):
        raise AdjustmentError("invalid", "codes must list 1-100 trace codes of 1-100 characters")
    if len(set(codes)) != len(codes):
        raise AdjustmentError("invalid", "codes must not repeat a code")
    split = data.get("split", False)
    if not isinstance(split, bool):
        raise AdjustmentError("invalid", "split must be true or false")
    try:  # required, as on a ticket: a repeat must be the same document
        time_ms = parse_time(data.get("time"), timezone)
    except ValueError as error:
        raise AdjustmentError("invalid", str(error)) from None
    count = _decimal(data, "count", str(len(codes)))
    if decimal.Decimal(count) == 0:
        raise AdjustmentError("invalid", "count must be above 0")
    price = _decimal(data, "price", "0") if "price" in data else ""
    return Adjustment(institution=_text(data, "institution", 12, required=True),
                      number=_text(data, "number", 40, required=True),
                      list_code=_text(data, "list_code", 50, required=True), codes=tuple(codes), count=count,
                      split=split, time_ms=time_ms, chg_type=_text(data, "chg_type", 6), price=price,
                      operator=_text(data, "operator", 50), memo=_text(data, "memo", 500))


def record(tx: Tx, adjustment: Adjustment, *, now_ms: int) -> tuple[int, bool]:
    """Store the document once: (its id, whether it is new)."""
    digest = hashlib.sha256(json.dumps(adjustment.__dict__, sort_keys=True).encode()).digest()
    row = tx.one("SELECT id, digest FROM adjustments WHERE institution = ? AND number = ?",
                 (adjustment.institution, adjustment.number))
    if row is not None:
        if bytes(row[1]) != digest:
            raise AdjustmentError("conflict", f"adjustment {adjustment.number} of {adjustment.institution} was "
                                  "already recorded with other content")
        return int(row[0]), False
    row = tx.one("INSERT INTO adjustments (institution, number, digest, chg_type, list_code, codes, count, split, "
                 "price, time_ms, operator, memo, state, received_ms, changed_ms) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?) RETURNING id",
                 (adjustment.institution, adjustment.number, digest, adjustment.chg_type, adjustment.list_code,
                  json.dumps(list(adjustment.codes)), adjustment.count, int(adjustment.split), adjustment.price,
                  adjustment.time_ms, adjustment.operator, adjustment.memo, now_ms, now_ms))
    assert row is not None
    return int(row[0]), True


def due(tx: Tx, *, limit: int) -> list[tuple[int, Adjustment]]:
    """Pending documents, oldest first, for the planner."""
    rows = tx.all("SELECT id, institution, number, list_code, codes, count, split, time_ms, chg_type, price, "
                  "operator, memo FROM adjustments WHERE state = 'pending' ORDER BY id LIMIT ?", (limit,))
    return [(int(row[0]), Adjustment(institution=row[1], number=row[2], list_code=row[3],
                                     codes=tuple(json.loads(row[4])), count=row[5], split=bool(row[6]),
                                     time_ms=int(row[7]), chg_type=row[8], price=row[9], operator=row[10],
                                     memo=row[11])) for row in rows]


def sending(tx: Tx, adjustment_id: int, *, bchno: str, request_id: int, now_ms: int) -> None:
    tx.write("UPDATE adjustments SET state = 'sending', bchno = ?, request_id = ?, changed_ms = ? WHERE id = ?",
             (bchno, request_id, now_ms, adjustment_id))


def settle(tx: Tx, request_id: int, *, failed: Mapping[str, str] | None, error: str = "", now_ms: int) -> None:
    """The request carrying adjustments was answered: accepted but for the rows in `failed` (bchno -> reason), or
    refused whole (`failed` None, `error` the reason). A refused document is dead; fix and post it under a new
    number."""
    rows = tx.all("SELECT id, bchno FROM adjustments WHERE request_id = ? AND state = 'sending'", (request_id,))
    for adjustment_id, bchno in rows:
        reason = error if failed is None else failed.get(bchno, "")
        tx.write("UPDATE adjustments SET state = ?, error = ?, changed_ms = ? WHERE id = ?",
                 ("dead" if failed is None or reason else "done", f"platform refused: {reason}" if reason else "",
                  now_ms, adjustment_id))


def not_sent(tx: Tx, adjustment_id: int, reason: str, *, now_ms: int) -> None:
    """The row could not be made (a field rule): dead, with the reason."""
    tx.write("UPDATE adjustments SET state = 'dead', error = ?, changed_ms = ? WHERE id = ?",
             (reason[:2000], now_ms, adjustment_id))


def withdrawn(tx: Tx, bchno: str, reason: str, *, now_ms: int) -> None:
    """An operator's 3507 of row `bchno` was accepted."""
    tx.write("UPDATE adjustments SET state = 'withdrawn', error = ?, changed_ms = ? WHERE bchno = ? AND state = 'done'",
             (f"withdrawn: {reason}"[:2000], now_ms, bchno))


def state_counts(tx: Tx) -> dict[str, int]:
    counts = {state: 0 for state in ("pending", "sending", "done", "dead", "withdrawn")}
    counts.update({state: int(count) for state, count in tx.all("SELECT state, count(*) FROM adjustments "
                                                                "GROUP BY state")})
    return counts


def rows_held_as(tx: Tx, bchno: str) -> list[tuple[str, str, str]]:
    """(institution, infno 3502, state) of the accepted adjustment the platform holds under `bchno`."""
    return [(row[0], row[1], row[2]) for row in tx.all(
        "SELECT institution, '3502', state FROM adjustments WHERE bchno = ? AND state = 'done'", (bchno,))]
