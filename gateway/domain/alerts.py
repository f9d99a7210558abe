"""Alerts: raised as events arrive, with the evidence that raised them, and a state an operator moves.

One live alert per (type, subject): a repeat of the same cause adds its evidence
(the newest 50 event and ticket ids are kept) and raises `count` instead of opening
another. States: open -> acknowledged -> resolved, or open -> resolved; resolved is
final, and the next occurrence opens a new alert. Device-condition alerts
(offline, backlog, clock) resolve themselves when the condition clears.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from gateway.errors import GatewayError
from gateway.store.base import Tx

__all__ = ["Alert", "Finding", "TYPES", "STATES", "AlertError", "raise_alert", "raise_found", "is_live", "add_evidence",
           "auto_resolve", "list_alerts", "get_alert", "change_state", "open_counts"]

TYPES = {
    "repeat_sale": "high",
    "returned_drug": "critical",
    "cross_institution_sale": "high",
    "distant_sale": "critical",
    "sales_above_purchases": "warning",
    "unscanned_sale": "warning",
    "product_mismatch": "high",
    "device_offline": "warning",
    "backlog_high": "warning",
    "clock_unsynced": "warning",
    "mac_failures": "high",
}
"""Alert type -> severity; docs/operations.md says what raises each."""
STATES = ("open", "acknowledged", "resolved")
_EVIDENCE_KEPT = 50
_COLUMNS = ("id, type, severity, state, institution, terminal, device, subject, detail, count, first_ms, last_ms, "
            "changed_ms, note, changed_by, events, tickets")


class AlertError(GatewayError, ValueError):
    """A state change that is not allowed (`conflict`), or an alert that does not exist (`missing`)."""

    def __init__(self, message: str, *, kind: str = "conflict") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Alert:
    id: int
    type: str
    severity: str
    state: str
    institution: str
    terminal: str
    device: str
    subject: str
    """What it is about (a code, a ticket line, a device): one live alert per type and subject."""
    detail: str
    count: int
    """Occurrences folded into this alert."""
    first_ms: int
    last_ms: int
    changed_ms: int
    note: str
    changed_by: str
    """Who last moved its state: a user's name (API), cli:<login> (the CLI), gateway (resolved by itself)."""
    events: list[int]
    """Ids of the stored events that are its evidence (newest last)."""
    tickets: list[int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """An alert a rule found, to be raised (`raise_found`): what the judging of a scan hands on."""

    kind: str
    subject: str
    detail: str
    now_ms: int
    institution: str = ""
    terminal: str = ""
    device: str = ""
    events: tuple[int, ...] = ()
    tickets: tuple[int, ...] = ()


def _merge(old: str, new: Sequence[int]) -> str:
    ids = [item for item in json.loads(old) if item not in new] + list(new)
    return json.dumps(ids[-_EVIDENCE_KEPT:])


def raise_alert(tx: Tx, kind: str, *, subject: str, detail: str, now_ms: int, institution: str = "",
                terminal: str = "", device: str = "", events: Sequence[int] = (), tickets: Sequence[int] = ()) -> int:
    """Open an alert, or fold this occurrence into the live one of the same type and subject; its id."""
    if kind not in TYPES:
        raise AlertError(f"unknown alert type {kind!r}")
    live = tx.one("SELECT id, events, tickets FROM alerts WHERE type = ? AND subject = ? AND state <> 'resolved'",
                  (kind, subject))
    if live is not None:
        tx.write("UPDATE alerts SET count = count + 1, last_ms = ?, detail = ?, events = ?, tickets = ? WHERE id = ?",
                   (now_ms, detail, _merge(live[1], events), _merge(live[2], tickets), live[0]))
        return int(live[0])
    row = tx.one(
        "INSERT INTO alerts (type, severity, state, institution, terminal, device, subject, detail, count, first_ms, "
        "last_ms, changed_ms, events, tickets) VALUES (?, ?, 'open', ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) RETURNING id",
        (kind, TYPES[kind], institution, terminal, device, subject, detail, now_ms, now_ms, now_ms,
         json.dumps(list(events)[-_EVIDENCE_KEPT:]), json.dumps(list(tickets)[-_EVIDENCE_KEPT:])),
    )
    assert row is not None
    return int(row[0])


def is_live(tx: Tx, kind: str, subject: str) -> bool:
    """Whether an alert of this type and subject is open or acknowledged."""
    return tx.one("SELECT 1 FROM alerts WHERE type = ? AND subject = ? AND state <> 'resolved'",
                  (kind, subject)) is not None


def raise_found(tx: Tx, finding: Finding) -> int:
    return raise_alert(tx, finding.kind, subject=finding.subject, detail=finding.detail, now_ms=finding.now_ms,
                       institution=finding.institution, terminal=finding.terminal, device=finding.device,
                       events=finding.events, tickets=finding.tickets)


def add_evidence(tx: Tx, kinds: Sequence[str], subject: str, *, events: Sequence[int] = (),
                 tickets: Sequence[int] = (), detail_note: str = "") -> None:
    """Add what was learnt later (the ticket a duplicate sale belongs to) to the live alert of one of `kinds` on
    `subject`, without counting another occurrence: it is the same fraud, better documented."""
    live = tx.one(f"SELECT id, events, tickets, detail FROM alerts WHERE subject = ? AND state <> 'resolved' "
                  f"AND type IN ({','.join('?' * len(kinds))}) ORDER BY id DESC LIMIT 1", (subject, *kinds))
    if live is None:
        return
    detail = live[3] if not detail_note or detail_note in live[3] else f"{live[3]}; {detail_note}"
    tx.write("UPDATE alerts SET events = ?, tickets = ?, detail = ? WHERE id = ?",
             (_merge(live[1], events), _merge(live[2], tickets), detail[:2000], live[0]))


def auto_resolve(tx: Tx, kind: str, subject: str, now_ms: int, note: str) -> None:
    """Resolve the live alert of this type and subject, if any, because its condition cleared."""
    tx.write("UPDATE alerts SET state = 'resolved', changed_ms = ?, note = ?, changed_by = 'gateway' "
               "WHERE type = ? AND subject = ? AND state <> 'resolved'", (now_ms, note, kind, subject))


def _alert(row: tuple[object, ...]) -> Alert:
    values = list(row)
    values[-2] = json.loads(str(values[-2]))
    values[-1] = json.loads(str(values[-1]))
    return Alert(*values)  # type: ignore[arg-type]


def list_alerts(tx: Tx, *, state: str = "", kind: str = "", institution: str = "", limit: int = 100) -> list[Alert]:
    """Newest first; `state` may be "live" for open and acknowledged together."""
    where, parameters = [], []
    if state == "live":
        where.append("state <> 'resolved'")
    elif state:
        where.append("state = ?")
        parameters.append(state)
    if kind:
        where.append("type = ?")
        parameters.append(kind)
    if institution:
        where.append("institution = ?")
        parameters.append(institution)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = tx.all(f"SELECT {_COLUMNS} FROM alerts {clause} ORDER BY last_ms DESC, id DESC LIMIT ?",
                  (*parameters, max(1, min(limit, 1000))))
    return [_alert(row) for row in rows]


def get_alert(tx: Tx, alert_id: int) -> Alert:
    row = tx.one(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
    if row is None:
        raise AlertError(f"no alert {alert_id}", kind="missing")
    return _alert(row)


def change_state(tx: Tx, alert_id: int, state: str, *, note: str, now_ms: int, by: str = "") -> Alert:
    """Acknowledge or resolve an alert, recording who (`by`); a resolved one stays resolved."""
    if state not in ("acknowledged", "resolved"):
        raise AlertError(f"state must be acknowledged or resolved, got {state!r}")
    current = get_alert(tx, alert_id)
    if current.state == "resolved":
        raise AlertError(f"alert {alert_id} is already resolved")
    if current.state == state:
        return current
    tx.write("UPDATE alerts SET state = ?, changed_ms = ?, note = ?, changed_by = ? WHERE id = ?",
               (state, now_ms, note[:500], by, alert_id))
    return get_alert(tx, alert_id)


def open_counts(tx: Tx) -> dict[tuple[str, str], int]:
    """(type, state) -> number of live alerts, for the metrics."""
    rows = tx.all("SELECT type, state, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY type, state")
    return {(kind, state): int(count) for kind, state, count in rows}
