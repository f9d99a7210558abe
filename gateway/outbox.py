"""The transactional outbox: every valid stored event enters it in the transaction that stores the event, and
leaves it only when the platform has accepted it (done) or refused it with a reason (dead).

Row states: pending (waiting to be planned into a request), sending (in a request), done, dead (a dead letter:
the platform's reason, or the local check that stopped it; `requeue` sends it again). A request is the exact body
sent, stored with its msgid before the first attempt, so a retry after an unknown outcome is the same request;
requests are open until settled, and a worker holds one under a lease so a crashed worker's requests return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway import catalog, mapping, rates
from gateway.platform_fields import check_envelope, check_row
from gateway.scans import StoredScan
from gateway.store import Tx

__all__ = ["enqueue", "plan", "Claimed", "claim", "settle_done", "settle_rejected", "settle_retry", "requeue",
           "release_leases", "state_counts", "dead_letters", "Planning"]

_SALE_INTERFACES = ("3505", "3506")


def enqueue(tx: Tx, scan: StoredScan, *, now_ms: int) -> None:
    """Put a just-stored valid event in the outbox (same transaction as the event)."""
    infno = mapping.INTERFACE.get(scan.op)
    if scan.err or not scan.code or infno is None:
        return
    tx.write("INSERT INTO outbox (event_id, institution, infno, state, ready_ms, changed_ms) "
               "VALUES (?, ?, ?, 'pending', ?, ?)", (scan.id, scan.institution, infno, now_ms, now_ms))


@dataclass(frozen=True, kw_only=True)
class Planning:
    """How plan() builds requests (from ForwardSettings and Rules)."""

    batch_size: int
    sale_hold_ms: int
    """Sales and returns wait this long after receipt, so the scans of one ticket line go up as one row."""
    timezone: str
    values: Mapping[str, Mapping[str, str]]
    """Institution -> its configured platform values (forward.defaults under forward.institutions.<code>)."""
    defaults: Mapping[str, str]


_PENDING = """
SELECT o.id, o.event_id, o.institution, o.infno, e.code, e.pid, e.lot, e.expiry, e.made, e.split_qty, e.ticket,
       e.event_ms, e.line_id, e.ticket_id, e.list_code, e.op
FROM outbox o JOIN events e ON e.id = o.event_id
WHERE o.state = 'pending' AND o.ready_ms <= ? AND (o.infno NOT IN ('3505', '3506') OR o.ready_ms <= ?)
ORDER BY o.id LIMIT ?
"""


def plan(tx: Tx, planning: Planning, *, now_ms: int, limit: int) -> int:
    """Turn ready pending rows into stored requests (rows failing the field rules become dead letters);
    the number of requests made. One instance plans at a time (the others wait, then see the rows taken)."""
    tx.lock(["outbox:plan"])
    rows = tx.all(_PENDING, (now_ms, now_ms - planning.sale_hold_ms, limit))
    groups: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in rows:
        line_id = row[12]
        key = ("line", line_id) if row[3] == "3505" and line_id is not None else ("event", row[1])
        groups.setdefault(key, []).append(row)
    ready: dict[tuple[str, str], list[tuple[list[int], dict[str, object]]]] = {}
    for (kind, ident), members in groups.items():
        first = members[0]
        institution, infno = first[2], first[3]
        values = {**planning.defaults, **planning.values.get(institution, {})}
        outbox_ids = [member[0] for member in members]
        try:
            source = _line_source(tx, ident, members) if kind == "line" else _event_source(tx, first)
            if source is None:
                continue  # a return whose sale is not uploaded yet: planned again later
            if isinstance(source, str):
                _dead(tx, outbox_ids, f"not sent: {source}", now_ms)
                continue
            built = mapping.build_row(source, values, planning.timezone)
            problems = check_row(infno, built)
        except (ValueError, TypeError, ArithmeticError, LookupError) as error:  # one odd row never stalls the rest
            _dead(tx, outbox_ids, f"not sent, the row could not be built: {type(error).__name__}: {error}", now_ms)
            continue
        if problems:
            _dead(tx, outbox_ids, "not sent, fix the data or forward.defaults: " + "; ".join(problems), now_ms)
            continue
        tx.write(f"UPDATE outbox SET bchno = ? WHERE id IN ({','.join('?' * len(outbox_ids))})",
                   (source.bchno, *outbox_ids))
        ready.setdefault((institution, infno), []).append((outbox_ids, built))
    made = 0
    for (institution, infno), items in ready.items():
        values = {**planning.defaults, **planning.values.get(institution, {})}
        for start in range(0, len(items), planning.batch_size):
            made += _request(tx, institution, infno, items[start:start + planning.batch_size], values, planning,
                             now_ms)
    return made


def _request(tx: Tx, institution: str, infno: str, items: list[tuple[list[int], dict[str, object]]],
             values: Mapping[str, str], planning: Planning, now_ms: int) -> int:
    outbox_ids = [ident for ids, _ in items for ident in ids]
    row = tx.one("INSERT INTO requests (institution, infno, msgid, body, state, next_ms, created_ms) "
                 "VALUES (?, ?, ?, ?, 'open', ?, ?) RETURNING id",
                 (institution, infno, f"planning-{outbox_ids[0]}", b"", now_ms, now_ms))
    assert row is not None
    request_id = int(row[0])
    msgid = mapping.msgid_for(institution, request_id, now_ms, planning.timezone)
    body = mapping.envelope(infno=infno, msgid=msgid, institution=institution, rows=[built for _, built in items],
                            values=values, now_ms=now_ms, timezone=planning.timezone,
                            batch=planning.batch_size > 1)
    problems = check_envelope({key: value for key, value in body.items() if key != "input"})
    if problems:
        tx.write("DELETE FROM requests WHERE id = ?", (request_id,))
        _dead(tx, outbox_ids, f"not sent, set forward.institutions.\"{institution}\" or forward.defaults: "
              + "; ".join(problems), now_ms)
        return 0
    tx.write("UPDATE requests SET msgid = ?, body = ? WHERE id = ?",
               (msgid, json.dumps(body, ensure_ascii=False).encode(), request_id))
    tx.write(f"UPDATE outbox SET state = 'sending', request_id = ?, changed_ms = ? "
               f"WHERE id IN ({','.join('?' * len(outbox_ids))})", (request_id, now_ms, *outbox_ids))
    return 1


def _line_source(tx: Tx, line_id: int, members: list[tuple[Any, ...]]) -> mapping.RowSource | str:
    line = tx.one("SELECT l.list_code, l.quantity, l.split, t.number, t.time_ms, t.platform FROM ticket_lines l "
                  "JOIN tickets t ON t.id = l.ticket_id WHERE l.id = ?", (line_id,))
    assert line is not None
    first = members[0]
    product = catalog.product_of(tx, first[5])
    return mapping.RowSource(
        infno="3505", bchno=f"TCL{line_id}", codes=tuple(member[4] for member in members), time_ms=line[4],
        list_code=line[0], name=product.name if product else "", lot=first[6], made=first[8], expiry=first[7],
        count=str(line[1]), split=bool(line[2]), docno=line[3], ticket_fields=json.loads(line[5]))


def _event_source(tx: Tx, row: tuple[Any, ...]) -> mapping.RowSource | str | None:
    (_, event_id, _, infno, code, pid, lot, expiry, made, split_qty, ticket, event_ms, _, ticket_id, list_code,
     _) = row
    product = catalog.product_of(tx, pid)
    if not list_code:
        return f"product {pid!r} of code {code} is not in the catalog (no med_list_codg)"
    ticket_fields: dict[str, str] = {}
    if ticket_id is not None:
        found = tx.one("SELECT platform FROM tickets WHERE id = ?", (ticket_id,))
        ticket_fields = json.loads(found[0]) if found else {}
    original = ""
    if infno == "3506":
        sale = tx.one("SELECT o.bchno, o.state FROM outbox o JOIN events e ON e.id = o.event_id "
                      "WHERE e.code = ? AND e.op IN (1, 6) AND e.id < ? ORDER BY e.id DESC LIMIT 1", (code, event_id))
        if sale is not None and sale[1] in ("pending", "sending"):
            return None
        original = sale[0] if sale is not None and sale[1] == "done" else ticket_fields.get("medins_prod_sel_no", "")
        if not original:
            return f"the sale of {code} being returned was never uploaded (give medins_prod_sel_no on the ticket)"
    return mapping.RowSource(
        infno=infno, bchno=f"TCE{event_id}", codes=(code,), time_ms=event_ms, list_code=list_code,
        name=product.name if product else "", lot=lot, made=made, expiry=expiry,
        count=str(split_qty or 1), split=split_qty > 0, docno=ticket or f"TC{event_id}", ticket_fields=ticket_fields,
        original_sale=original)


def _dead(tx: Tx, outbox_ids: Iterable[int], error: str, now_ms: int) -> None:
    ids = list(outbox_ids)
    tx.write(f"UPDATE outbox SET state = 'dead', error = ?, request_id = NULL, changed_ms = ? "
               f"WHERE id IN ({','.join('?' * len(ids))})", (error[:2000], now_ms, *ids))


@dataclass(frozen=True)
class Claimed:
    request_id: int
    msgid: str
    infno: str
    body: bytes
    attempts: int


def claim(tx: Tx, *, instance: str, now_ms: int, lease_ms: int) -> Claimed | None:
    """The open request due first, leased to `instance` for `lease_ms`. The lease is taken only if no other
    instance took it since the look-up (the update re-checks), so two workers never send one request at once."""
    rows = tx.all("SELECT id, msgid, infno, body, attempts FROM requests WHERE state = 'open' AND next_ms <= ? "
                  "AND lease_until_ms <= ? ORDER BY next_ms, id LIMIT 8", (now_ms, now_ms))
    for row in rows:
        if tx.execute("UPDATE requests SET lease_until_ms = ?, claimed_by = ? WHERE id = ? AND state = 'open' "
                      "AND lease_until_ms <= ?", (now_ms + lease_ms, instance, row[0], now_ms)):
            return Claimed(int(row[0]), row[1], row[2], bytes(row[3]), int(row[4]))
    return None


def settle_done(tx: Tx, request_id: int, failed: Mapping[str, str], *, now_ms: int) -> tuple[int, int]:
    """The platform accepted the request; rows it names in `failed` (bchno -> reason) become dead letters.
    (rows done, rows dead)."""
    tx.lock([f"request:{request_id}"])  # an instance whose lease ran out may settle the same request
    rows = tx.all("SELECT o.id, o.bchno, e.institution, e.terminal, e.event_ms FROM outbox o "
                  "JOIN events e ON e.id = o.event_id WHERE o.request_id = ? AND o.state = 'sending'", (request_id,))
    done = dead = 0
    for outbox_id, bchno, institution, terminal, event_ms in rows:
        if bchno in failed:
            _dead(tx, [outbox_id], f"platform refused: {failed[bchno]}", now_ms)
            dead += 1
        else:
            tx.write("UPDATE outbox SET state = 'done', changed_ms = ? WHERE id = ?", (now_ms, outbox_id))
            rates.bump(tx, institution, terminal, event_ms, uploaded=1)
            done += 1
    tx.write("UPDATE requests SET state = 'done', done_ms = ?, lease_until_ms = 0 WHERE id = ?",
               (now_ms, request_id))
    return done, dead


def settle_rejected(tx: Tx, request_id: int, reason: str, *, now_ms: int) -> int:
    """The platform refused the whole request: every row becomes a dead letter; the number of rows."""
    ids = [row[0] for row in tx.all("SELECT id FROM outbox WHERE request_id = ? AND state = 'sending'",
                                    (request_id,))]
    if ids:
        _dead(tx, ids, f"platform refused: {reason}", now_ms)
    tx.write("UPDATE requests SET state = 'refused', done_ms = ?, lease_until_ms = 0, last_error = ? WHERE id = ?",
               (now_ms, reason[:2000], request_id))
    return len(ids)


def settle_retry(tx: Tx, request_id: int, error: str, *, next_ms: int) -> None:
    """Outcome unknown or transient: the same request (same msgid, same body) goes again at `next_ms`."""
    tx.write("UPDATE requests SET attempts = attempts + 1, next_ms = ?, lease_until_ms = 0, last_error = ? "
               "WHERE id = ?", (next_ms, error[:2000], request_id))


def requeue(tx: Tx, outbox_ids: Iterable[int] | None, *, now_ms: int) -> int:
    """Dead letters back to pending (all when `outbox_ids` is None); a new request is planned for them."""
    if outbox_ids is None:
        return tx.execute("UPDATE outbox SET state = 'pending', error = '', request_id = NULL, ready_ms = 0, "
                          "changed_ms = ? WHERE state = 'dead'", (now_ms,))
    ids = list(outbox_ids)
    if not ids:
        return 0
    return tx.execute(f"UPDATE outbox SET state = 'pending', error = '', request_id = NULL, ready_ms = 0, "
                      f"changed_ms = ? WHERE state = 'dead' AND id IN ({','.join('?' * len(ids))})", (now_ms, *ids))


def dead_among(tx: Tx, outbox_ids: Iterable[int]) -> set[int]:
    """Which of these ids are dead letters."""
    ids = [item for item in outbox_ids if 0 < item < 2**63]
    if not ids:
        return set()
    return {int(row[0]) for row in tx.all(f"SELECT id FROM outbox WHERE state = 'dead' AND id IN "
                                          f"({','.join('?' * len(ids))})", ids)}


def release_leases(tx: Tx, instance: str) -> int:
    """At start: requests this instance held when it died are free again."""
    return tx.execute("UPDATE requests SET lease_until_ms = 0 WHERE state = 'open' AND claimed_by = ?", (instance,))


def state_counts(tx: Tx) -> dict[str, int]:
    """Rows per state; `retrying` (failed-retryable) counts the sending rows whose request already failed once."""
    counts = {state: 0 for state in ("pending", "sending", "done", "dead")}
    counts.update({state: int(count) for state, count in tx.all("SELECT state, count(*) FROM outbox GROUP BY state")})
    row = tx.one("SELECT count(*) FROM outbox o JOIN requests r ON r.id = o.request_id "
                 "WHERE o.state = 'sending' AND r.attempts > 0")
    counts["retrying"] = int(row[0]) if row else 0
    return counts


def dead_letters(tx: Tx, *, limit: int = 100) -> list[dict[str, object]]:
    rows = tx.all("SELECT o.id, o.event_id, o.institution, o.infno, o.bchno, o.error, o.changed_ms, e.code, "
                  "e.device, e.seq FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.state = 'dead' "
                  "ORDER BY o.changed_ms DESC, o.id DESC LIMIT ?", (max(1, min(limit, 1000)),))
    names = ("id", "event_id", "institution", "infno", "bchno", "error", "changed_ms", "code", "device", "seq")
    return [dict(zip(names, row, strict=True)) for row in rows]
