"""The transactional outbox: every valid stored event enters it in the transaction that stores the event, and
leaves it only when the platform has accepted it (done), refused it with a reason (dead), or it is withheld.

Row states: pending (waiting to be planned into a request), sending (in a request), done (the platform holds it in
the accepted row `live_bchno`), dead (a dead letter: the platform's reason, or the local check that stopped it;
`requeue` sends it again), withheld (a sale scan its ticket does not sell: see below; and a return of such a
scan), withdrawn (an operator had the platform delete its row: gateway.domain.withdrawals; a late scan of a line so
withdrawn, and a return of a sale so withdrawn, are withdrawn too, with the reason). The planner also turns the
operator's withdrawals and the adjustments posted to the API (gateway.domain.adjustments) into requests, and settling
a request settles them. A request is the exact body
sent, stored with its msgid before the first attempt, so a retry after an unknown outcome is the same request;
requests are open until settled, and a worker holds one under a lease so a crashed worker's requests return.

Sale rows are exact. A ticket line goes up as one 3505 row: every code scanned for it and the line's quantity
(packs, or units on a split line), never a part of it. The line is held until it is complete (as many scans as it
needs) or quiet: `sale_hold_ms` after the later of the ticket's receipt and its last scan's receipt. A sale scan
tied to no ticket is held `sale_hold_ms` from its receipt, so a ticket arriving after its scans can claim them,
then goes up as a row of its own (one pack, or its split units). A sale scan tied to a ticket but to none of its
lines (beyond the line's quantity, a box already counted, a product the ticket does not bill) is withheld: the
ticket says what was sold, and the scan is evidence on the alerts, not a sale.

What changes a line after its row was accepted (a scan that arrives late, a scan uploaded on its own before its
ticket claimed it, a requeued dead letter) is corrected with the platform's own delete: a 3507 withdrawal of every
accepted row holding the line's scans, and once each withdrawal is accepted, one corrected row with all the
line's codes, its true quantity and a new `fixmedins_bchno` (`TCL<line>-<n>`). Not a supplementary row: the
line's quantity went up whole in its first row, so a late code adds no units, and a row of quantity 0 is a sale
of nothing that no published rule says a platform takes; nor could a supplementary row move a box that went up
on its own (under another `rtal_docno`) into its line. docs/platform.md gives 3507 a `fixmedins_bchno` and an
`inv_data_type` (4: sale), and says a resent bchno may not be idempotent, hence a new one for the corrected row.
The corrected row is planned only after the withdrawal is accepted, so the platform never holds two rows of one
line (for a moment it holds none). A row named by an accepted sale return (3506 `medins_prod_sel_no`) is not
withdrawn, since that would orphan the return: a late scan of its line becomes a dead letter saying so; a return
waits while its sale's line is being planned or corrected.

All of it lives in the database (outbox rows, requests, ticket lines), so a restart anywhere resumes it; planning
takes the lock `outbox:plan`, and so does an ingest batch with tickets (a ticket claims waiting scans, which may
move them out of an accepted row), so on PostgreSQL one instance plans at a time and never against a claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.contract import mapping
from gateway.contract.platform_fields import check_envelope, check_row
from gateway.domain import adjustments, catalog, rates, tickets, withdrawals
from gateway.domain.locks import PLAN_LOCK
from gateway.domain.scans import StoredScan
from gateway.store.base import Tx

__all__ = ["enqueue", "regroup", "plan", "Claimed", "claim", "resign", "settle_done", "settle_rejected", "settle_retry",
           "requeue", "release_leases", "state_counts", "live_rows", "dead_letters", "Planning", "PLAN_LOCK",
           "oldest_unsettled_ms", "request_counts", "ask_withdrawal",
           "record_sign_in", "sign_in_sent", "sign_in_answered"]

_SALE_INTERFACES = ("3505", "3506")


def enqueue(tx: Tx, scan: StoredScan, *, now_ms: int) -> None:
    """Put a just-stored valid event in the outbox (same transaction as the event)."""
    infno = mapping.INTERFACE.get(scan.op)
    if scan.err or not scan.code or infno is None:
        return
    tx.write("INSERT INTO outbox (event_id, institution, infno, state, ready_ms, changed_ms) "
               "VALUES (?, ?, ?, 'pending', ?, ?)", (scan.id, scan.institution, infno, now_ms, now_ms))


def regroup(tx: Tx, event_id: int, *, now_ms: int) -> None:
    """A stored sale scan was just tied to a ticket (which arrived after it): it belongs in its line's row, or in
    none. Accepted on its own already: it goes back to pending, still live in that row, which the planner
    withdraws. In a request now: marked, so that settling the request sends it back to pending. The caller holds
    PLAN_LOCK."""
    tx.write("UPDATE outbox SET regroup = 1, changed_ms = ?, state = CASE WHEN state = 'done' THEN 'pending' "
             "ELSE state END WHERE event_id = ? AND state IN ('pending', 'sending', 'done')", (now_ms, event_id))


@dataclass(frozen=True, kw_only=True)
class Planning:
    """How plan() builds requests (from ForwardSettings and Rules)."""

    batch_size: int
    sale_hold_ms: int
    """A ticket line waits until it is complete or this long after its ticket's and its last scan's receipt; a
    sale scan tied to no ticket, and a return, wait this long after their receipt."""
    timezone: str
    values: Mapping[str, Mapping[str, str]]
    """Institution -> its configured platform values (forward.defaults under forward.institutions.<code>)."""
    defaults: Mapping[str, str]


_PENDING = """
SELECT o.id, o.event_id, o.institution, o.infno, e.code, e.pid, e.lot, e.expiry, e.made, e.split_qty, e.ticket,
       e.event_ms, e.line_id, e.ticket_id, e.list_code, e.op, o.live_bchno, e.matching, e.verdict
FROM outbox o JOIN events e ON e.id = o.event_id LEFT JOIN ticket_lines l ON l.id = e.line_id
WHERE o.state = 'pending' AND o.ready_ms <= ?
  AND (o.infno NOT IN ('3505', '3506') OR o.ready_ms <= ? OR l.scans >= l.needed)
ORDER BY o.id LIMIT ?
"""
_Built = tuple[list[int], dict[str, Any], "mapping.RowSource"]


def plan(tx: Tx, planning: Planning, *, now_ms: int, limit: int) -> int:
    """Turn ready pending rows into stored requests (rows failing the field rules become dead letters), and
    withdrawals (3507) where an accepted row must be corrected; the number of requests made. One instance plans at
    a time (the others wait, then see the rows taken)."""
    tx.lock([PLAN_LOCK])
    planner = _Planner(tx, planning, now_ms)
    lines: dict[int, None] = {}
    for row in tx.all(_PENDING, (now_ms, now_ms - planning.sale_hold_ms, limit)):
        if row[3] == "3505" and row[12] is not None:
            lines.setdefault(int(row[12]), None)
        else:
            planner.single(row)
    for line_id in lines:
        planner.line(line_id)
    return planner.send() + planner.operator_withdrawals() + planner.adjustments(limit)


@dataclass(frozen=True)
class _Withheld:
    reason: str


class _Planner:
    def __init__(self, tx: Tx, planning: Planning, now_ms: int) -> None:
        self.tx = tx
        self.planning = planning
        self.now_ms = now_ms
        self.ready: dict[tuple[str, str], list[_Built]] = {}
        self.withdrawals: dict[str, tuple[str, str]] = {}
        """bchno -> (institution, interface) of the accepted rows to withdraw."""

    def values(self, institution: str) -> dict[str, str]:
        return {**self.planning.defaults, **self.planning.values.get(institution, {})}

    def line(self, line_id: int) -> None:
        """Plan one ticket line: wait, withdraw what the platform holds of it, or send its one row."""
        tx = self.tx
        line = tickets.line_to_upload(tx, line_id)
        list_code, number, rows_made = line.list_code, line.number, line.rows_made
        members = tx.all("SELECT o.id, o.state, o.live_bchno, o.ready_ms, o.institution, e.code, e.pid, e.lot, "
                         "e.expiry, e.made FROM outbox o JOIN events e ON e.id = o.event_id WHERE e.line_id = ? "
                         "ORDER BY e.id", (line_id,))
        if any(member[1] == "sending" for member in members):
            return  # settled first: then what the platform holds is known
        pending = [member for member in members if member[1] == "pending"]
        if not pending:
            return
        if any(member[1] == "withdrawn" for member in members):
            ids = [member[0] for member in pending]
            tx.write(f"UPDATE outbox SET state = 'withdrawn', regroup = 0, error = ?, changed_ms = ? "
                     f"WHERE id IN ({','.join('?' * len(ids))})",
                     (f"not sent: an operator withdrew ticket {number} line {list_code} (TCL{line_id}) from the "
                      "platform", self.now_ms, *ids))
            return
        quiet_ms = max([line.received_ms, *(int(member[3]) for member in members)]) + self.planning.sale_hold_ms
        if line.scans < line.needed and quiet_ms > self.now_ms:
            return  # more scans may come: the line goes up once
        live = sorted({member[2] for member in members if member[2]})
        if live:
            self.withdraw_first(live, [member[0] for member in pending if not member[2]],
                                f"ticket {number} line {list_code} (TCL{line_id})")
            return
        first = pending[0]
        institution = first[4]
        bchno = f"TCL{line_id}" if not rows_made else f"TCL{line_id}-{rows_made + 1}"
        tickets.count_row_made(tx, line_id)
        product = catalog.product_of(tx, first[6])
        source = mapping.RowSource(
            infno="3505", bchno=bchno, codes=tuple(member[5] for member in pending), time_ms=line.time_ms,
            list_code=list_code, name=product.name if product else "", lot=first[7], made=first[9], expiry=first[8],
            count=str(line.quantity), split=line.split, docno=number, ticket_fields=line.platform)
        self.build(institution, "3505", [member[0] for member in pending], source)

    def single(self, row: tuple[Any, ...]) -> None:
        """Plan one event that goes up on its own (or is withheld)."""
        outbox_id, event_id, institution, infno = int(row[0]), int(row[1]), row[2], row[3]
        live_bchno, ticket_id = row[16], row[13]
        if infno == "3505" and ticket_id is not None:
            if live_bchno:  # it went up on its own before its ticket came and showed it is no sale of its own
                self.withdraw_first([live_bchno], [], f"scan {event_id}")
                return
            number = tickets.number_of(self.tx, ticket_id)
            self.tx.write("UPDATE outbox SET state = 'withheld', regroup = 0, error = ?, changed_ms = ? WHERE id = ?",
                          (f"not a sale of its own: tied to ticket {number or ticket_id} but to none "
                           "of its lines (beyond the line's quantity, a box already counted, or a product the "
                           "ticket does not bill); evidence on the alerts", self.now_ms, outbox_id))
            return
        if live_bchno:
            self.tx.write("UPDATE outbox SET state = 'done', regroup = 0 WHERE id = ?", (outbox_id,))
            return  # no ticket claimed it after all: it stays what the platform holds
        try:
            source = self.event_source(row)
        except (ValueError, TypeError, ArithmeticError, LookupError) as error:  # one odd row never stalls the rest
            _dead(self.tx, [outbox_id], f"not sent, the row could not be built: {type(error).__name__}: {error}",
                  self.now_ms)
            return
        if source is None:
            return  # a return whose sale is not uploaded yet: planned again later
        if isinstance(source, _Withheld):
            self.tx.write("UPDATE outbox SET state = 'withheld', regroup = 0, error = ?, changed_ms = ? WHERE id = ?",
                          (f"not a return of its own: {source.reason}", self.now_ms, outbox_id))
            return
        if isinstance(source, str):
            _dead(self.tx, [outbox_id], f"not sent: {source}", self.now_ms)
            return
        self.build(institution, infno, [outbox_id], source)

    def build(self, institution: str, infno: str, outbox_ids: list[int], source: mapping.RowSource) -> None:
        try:
            built = mapping.build_row(source, self.values(institution), self.planning.timezone)
            problems = check_row(infno, built)
        except (ValueError, TypeError, ArithmeticError, LookupError) as error:  # one odd row never stalls the rest
            _dead(self.tx, outbox_ids, f"not sent, the row could not be built: {type(error).__name__}: {error}",
                  self.now_ms)
            return
        if problems:
            _dead(self.tx, outbox_ids, "not sent, fix the data or forward.defaults: " + "; ".join(problems),
                  self.now_ms)
            return
        self.tx.write(f"UPDATE outbox SET bchno = ?, ref_bchno = ?, regroup = 0 "
                      f"WHERE id IN ({','.join('?' * len(outbox_ids))})",
                      (source.bchno, source.original_sale, *outbox_ids))
        self.ready.setdefault((institution, infno), []).append((outbox_ids, built, source))

    def withdraw_first(self, live: list[str], waiting: list[int], what: str) -> None:
        """The platform holds rows `live` that must go before `what` is sent again: withdraw them (3507), unless a
        return names one; then the rows still waiting to join it (`waiting`) become dead letters."""
        tx = self.tx
        for bchno in live:  # all or none: a row withdrawn in vain would take codes off the platform
            returned = tx.one("SELECT bchno FROM outbox WHERE ref_bchno = ? AND infno = '3506' "
                              "AND state IN ('sending', 'done') LIMIT 1", (bchno,))
            if returned is not None:
                tx.write(f"UPDATE outbox SET state = 'done', regroup = 0 WHERE state = 'pending' "
                         f"AND live_bchno IN ({','.join('?' * len(live))})", live)
                if waiting:
                    _dead(tx, waiting, f"not sent: {what} is held by the platform as row {bchno}, which the return "
                          f"{returned[0]} (3506) names; withdrawing it (3507) would orphan that return, so this code "
                          "is not on the platform: add it there by hand", self.now_ms)
                return
        for bchno in live:
            if bchno in self.withdrawals:
                continue
            last = tx.one("SELECT state FROM requests WHERE withdraws = ? ORDER BY id DESC LIMIT 1", (bchno,))
            if last is not None and last[0] == "open":
                continue
            holder = tx.one("SELECT institution, infno FROM outbox WHERE live_bchno = ? LIMIT 1", (bchno,))
            assert holder is not None
            self.withdrawals[bchno] = (holder[0], holder[1])

    def event_source(self, row: tuple[Any, ...]) -> mapping.RowSource | _Withheld | str | None:
        tx = self.tx
        (_, event_id, _, infno, code, pid, lot, expiry, made, split_qty, ticket, event_ms, _, ticket_id, list_code,
         *_) = row
        product = catalog.product_of(tx, pid)
        if not list_code:
            return f"product {pid!r} of code {code} is not in the catalog (no med_list_codg)"
        ticket_fields: dict[str, str] = {}
        if ticket_id is not None:
            ticket_fields = tickets.platform_fields(tx, ticket_id)
        original = ""
        if infno == "3506":
            sale = tx.one("SELECT o.live_bchno, o.state, e.line_id, e.id FROM outbox o JOIN events e "
                          "ON e.id = o.event_id WHERE e.code = ? AND e.op IN (1, 6) AND e.id < ? "
                          "ORDER BY e.id DESC LIMIT 1", (code, event_id))
            if sale is not None and sale[1] in ("pending", "sending"):
                return None
            if sale is not None and sale[1] in ("withheld", "withdrawn"):
                why = "was withheld (no sale of its own)" if sale[1] == "withheld" else "an operator withdrew"
                return _Withheld(f"returns the sale scan {sale[3]}, which {why}, so the platform holds no sale to "
                                 "return")
            if sale is not None and sale[2] is not None and tx.one(
                    "SELECT 1 FROM outbox o JOIN events e ON e.id = o.event_id WHERE e.line_id = ? "
                    "AND o.state IN ('pending', 'sending') LIMIT 1", (sale[2],)):
                return None  # its line's row is being planned or corrected: name the row that stays
            original = sale[0] if sale is not None and sale[1] == "done" else ticket_fields.get("medins_prod_sel_no",
                                                                                                "")
            if not original:
                return f"the sale of {code} being returned was never uploaded (give medins_prod_sel_no on the ticket)"
        return mapping.RowSource(
            infno=infno, bchno=f"TCE{event_id}", codes=(code,), time_ms=event_ms, list_code=list_code,
            name=product.name if product else "", lot=lot, made=made, expiry=expiry,
            count=str(split_qty or 1), split=split_qty > 0, docno=ticket or f"TC{event_id}",
            ticket_fields=ticket_fields, original_sale=original,
            memo=f"单据 {ticket}" if infno == "3502" and ticket else "")

    def send(self) -> int:
        made = 0
        for bchno, (institution, infno) in self.withdrawals.items():
            row = mapping.withdrawal_row(bchno, infno)
            made += bool(_request(self.tx, institution, mapping.WITHDRAW, [([], row)], self.values(institution),
                                  self.planning, self.now_ms, withdraws=bchno)[0])
        for (institution, infno), items in self.ready.items():
            values = self.values(institution)
            for start in range(0, len(items), self.planning.batch_size):
                part = [(ids, built) for ids, built, _ in items[start:start + self.planning.batch_size]]
                made += bool(_request(self.tx, institution, infno, part, values, self.planning, self.now_ms)[0])
        return made

    def operator_withdrawals(self) -> int:
        """Requests for the withdrawals operators asked for (gateway.domain.withdrawals)."""
        made = 0
        for asked in withdrawals.due(self.tx):
            row = mapping.withdrawal_row(asked.bchno, asked.infno)
            request_id, problem = _request(self.tx, asked.institution, mapping.WITHDRAW, [([], row)],
                                           self.values(asked.institution), self.planning, self.now_ms,
                                           withdraws=asked.bchno, operator=True)
            if request_id:
                withdrawals.sending(self.tx, asked.id, request_id, now_ms=self.now_ms)
                made += 1
            else:
                withdrawals.settle(self.tx, asked.id, accepted=False, error=problem, now_ms=self.now_ms)
        return made

    def adjustments(self, limit: int) -> int:
        """One 3502 request per inventory change posted to the API (gateway.domain.adjustments)."""
        made = 0
        for adjustment_id, document in adjustments.due(self.tx, limit=limit):
            bchno = f"TCA{adjustment_id}"
            name = catalog.name_of(self.tx, document.list_code)
            source = mapping.RowSource(
                infno="3502", bchno=bchno, codes=document.codes, time_ms=document.time_ms,
                list_code=document.list_code, name=name, count=document.count,
                split=document.split, chg_type=document.chg_type, price=document.price, operator=document.operator,
                memo=document.memo or f"单据 {document.number}")
            values = self.values(document.institution)
            try:
                built = mapping.build_row(source, values, self.planning.timezone)
                problems = check_row("3502", built)
            except (ValueError, TypeError, ArithmeticError, LookupError) as error:
                problems = [f"the row could not be built: {type(error).__name__}: {error}"]
            if problems:
                adjustments.not_sent(self.tx, adjustment_id, "not sent, fix the document or forward.defaults: "
                                     + "; ".join(problems), now_ms=self.now_ms)
                continue
            request_id, problem = _request(self.tx, document.institution, "3502", [([], built)], values,
                                           self.planning, self.now_ms)
            if request_id:
                adjustments.sending(self.tx, adjustment_id, bchno=bchno, request_id=request_id, now_ms=self.now_ms)
                made += 1
            else:
                adjustments.not_sent(self.tx, adjustment_id, problem, now_ms=self.now_ms)
        return made


def _request(tx: Tx, institution: str, infno: str, items: list[tuple[list[int], dict[str, object]]],
             values: Mapping[str, str], planning: Planning, now_ms: int, *, withdraws: str = "",
             operator: bool = False) -> tuple[int, str]:
    """Store the request for `items`: (its id, ""), or (0, why it cannot be sent). The rows of a failed request
    become dead letters; a failed withdrawal of the gateway's own leaves its row as it is (see
    _withdrawal_refused), an operator's is left to the caller (`operator`)."""
    outbox_ids = [ident for ids, _ in items for ident in ids]
    row = tx.one("INSERT INTO requests (institution, infno, msgid, body, state, next_ms, created_ms, withdraws) "
                 "VALUES (?, ?, ?, ?, 'open', ?, ?, ?) RETURNING id",
                 (institution, infno, f"planning-{outbox_ids[0] if outbox_ids else withdraws}", b"", now_ms, now_ms,
                  withdraws))
    assert row is not None
    request_id = int(row[0])
    msgid = mapping.msgid_for(institution, request_id, now_ms, planning.timezone)
    body = mapping.envelope(infno=infno, msgid=msgid, institution=institution, rows=[built for _, built in items],
                            values=values, now_ms=now_ms, timezone=planning.timezone,
                            batch=planning.batch_size > 1 and not withdraws)
    problems = check_envelope({key: value for key, value in body.items() if key != "input"})
    if problems:
        tx.write("DELETE FROM requests WHERE id = ?", (request_id,))
        reason = f"not sent, set forward.institutions.\"{institution}\" or forward.defaults: " + "; ".join(problems)
        if withdraws and not operator:
            _withdrawal_refused(tx, withdraws, reason, now_ms)
        elif outbox_ids:
            _dead(tx, outbox_ids, reason, now_ms)
        return 0, reason
    tx.write("UPDATE requests SET msgid = ?, body = ? WHERE id = ?",
               (msgid, json.dumps(body, ensure_ascii=False).encode(), request_id))
    if outbox_ids:
        tx.write(f"UPDATE outbox SET state = 'sending', request_id = ?, changed_ms = ? "
                 f"WHERE id IN ({','.join('?' * len(outbox_ids))})", (request_id, now_ms, *outbox_ids))
    return request_id, ""


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
    institution: str = ""


def claim(tx: Tx, *, instance: str, now_ms: int, lease_ms: int) -> Claimed | None:
    """The open request due first, leased to `instance` for `lease_ms`. The lease is taken only if no other
    instance took it since the look-up (the update re-checks), so two workers never send one request at once."""
    rows = tx.all("SELECT id, msgid, infno, body, attempts, institution FROM requests WHERE state = 'open' "
                  "AND next_ms <= ? AND lease_until_ms <= ? ORDER BY next_ms, id LIMIT 8", (now_ms, now_ms))
    for row in rows:
        if tx.execute("UPDATE requests SET lease_until_ms = ?, claimed_by = ? WHERE id = ? AND state = 'open' "
                      "AND lease_until_ms <= ?", (now_ms + lease_ms, instance, row[0], now_ms)):
            return Claimed(int(row[0]), row[1], row[2], bytes(row[3]), int(row[4]), row[5])
    return None


def resign(tx: Tx, claimed: Claimed, *, sign_no: str, msgid: str = "") -> Claimed:
    """The claimed request with `sign_no` in its envelope, and `msgid` when given, stored before it is sent (the
    stored body stays the exact body sent). A new msgid only after the platform refused the old sign_no: it then
    processed nothing under the old msgid, and may answer that msgid with the same refusal for ever."""
    body = json.loads(claimed.body)
    if body.get("sign_no") == sign_no and (not msgid or msgid == claimed.msgid):
        return claimed
    body["sign_no"] = sign_no
    body["msgid"] = msgid or claimed.msgid
    encoded = json.dumps(body, ensure_ascii=False).encode()
    tx.write("UPDATE requests SET msgid = ?, body = ? WHERE id = ?", (body["msgid"], encoded, claimed.request_id))
    return Claimed(claimed.request_id, body["msgid"], claimed.infno, encoded, claimed.attempts, claimed.institution)


def settle_done(tx: Tx, request_id: int, failed: Mapping[str, str], *, now_ms: int) -> tuple[int, int]:
    """The platform accepted the request; rows it names in `failed` (bchno -> reason) become dead letters.
    (rows done, rows dead). An accepted withdrawal sends the rows it took off the platform back to pending."""
    tx.lock([f"request:{request_id}"])  # an instance whose lease ran out may settle the same request
    request = tx.one("SELECT withdraws, state FROM requests WHERE id = ?", (request_id,))
    if request is not None and request[0] and request[1] == "open":
        if request[0] in failed:
            return 0, settle_rejected(tx, request_id, failed[request[0]], now_ms=now_ms)
        asked = withdrawals.of_request(tx, request_id)
        if asked is not None:  # an operator's: final, nothing goes up in its place
            tx.write("UPDATE outbox SET state = 'withdrawn', live_bchno = '', regroup = 0, error = ?, changed_ms = ? "
                     "WHERE live_bchno = ? AND state IN ('done', 'pending')",
                     (f"withdrawn by {asked.operator or 'an operator'}: {asked.reason}"[:2000], now_ms, request[0]))
            adjustments.withdrawn(tx, request[0], asked.reason, now_ms=now_ms)
            withdrawals.settle(tx, asked.id, accepted=True, now_ms=now_ms)
        else:
            tx.write("UPDATE outbox SET state = 'pending', live_bchno = '', changed_ms = ? "
                     "WHERE live_bchno = ? AND state IN ('done', 'pending')", (now_ms, request[0]))
    elif request is not None and request[1] == "open":
        adjustments.settle(tx, request_id, failed=failed, now_ms=now_ms)
    rows = tx.all("SELECT o.id, o.bchno, o.uploaded, e.institution, e.terminal, e.event_ms FROM outbox o "
                  "JOIN events e ON e.id = o.event_id WHERE o.request_id = ? AND o.state = 'sending'", (request_id,))
    done = dead = 0
    for outbox_id, bchno, uploaded, institution, terminal, event_ms in rows:
        if bchno in failed:
            _dead(tx, [outbox_id], f"platform refused: {failed[bchno]}", now_ms)
            dead += 1
        else:
            # a scan its ticket claimed while it was on its way goes back to pending, to be moved into its line
            tx.write("UPDATE outbox SET state = CASE WHEN regroup = 1 THEN 'pending' ELSE 'done' END, "
                     "live_bchno = bchno, uploaded = 1, changed_ms = ? WHERE id = ?", (now_ms, outbox_id))
            if not uploaded:  # a row sent again in a corrected row was counted the first time
                rates.bump(tx, institution, terminal, event_ms, uploaded=1)
            done += 1
    tx.write("UPDATE requests SET state = 'done', done_ms = ?, lease_until_ms = 0 WHERE id = ?",
               (now_ms, request_id))
    return done, dead


def settle_rejected(tx: Tx, request_id: int, reason: str, *, now_ms: int) -> int:
    """The platform refused the whole request: every row becomes a dead letter; the number of rows. A refused
    withdrawal leaves its row on the platform, and the rows that were to replace it become dead letters."""
    request = tx.one("SELECT withdraws, state FROM requests WHERE id = ?", (request_id,))
    if request is not None and request[0] and request[1] == "open":
        asked = withdrawals.of_request(tx, request_id)
        if asked is not None:
            withdrawals.settle(tx, asked.id, accepted=False, error=f"platform refused: {reason}", now_ms=now_ms)
        _withdrawal_refused(tx, request[0], f"platform refused: {reason}", now_ms)
    elif request is not None and request[1] == "open":
        adjustments.settle(tx, request_id, failed=None, error=reason, now_ms=now_ms)
    ids = [row[0] for row in tx.all("SELECT id FROM outbox WHERE request_id = ? AND state = 'sending'",
                                    (request_id,))]
    if ids:
        _dead(tx, ids, f"platform refused: {reason}", now_ms)
    tx.write("UPDATE requests SET state = 'refused', done_ms = ?, lease_until_ms = 0, last_error = ? WHERE id = ?",
               (now_ms, reason[:2000], request_id))
    return len(ids)


def _withdrawal_refused(tx: Tx, bchno: str, reason: str, now_ms: int) -> None:
    """The platform keeps row `bchno`: its scans stay done; the scans of its line that were waiting to go up
    with them in a corrected row become dead letters (a requeue tries the withdrawal again)."""
    lines = [row[0] for row in tx.all("SELECT DISTINCT e.line_id FROM outbox o JOIN events e ON e.id = o.event_id "
                                      "WHERE o.live_bchno = ? AND e.line_id IS NOT NULL", (bchno,))]
    tx.write("UPDATE outbox SET state = 'done', regroup = 0, changed_ms = ? WHERE live_bchno = ? "
             "AND state = 'pending'", (now_ms, bchno))
    for line_id in lines:
        waiting = [row[0] for row in tx.all("SELECT o.id FROM outbox o JOIN events e ON e.id = o.event_id "
                                            "WHERE e.line_id = ? AND o.state = 'pending' AND o.live_bchno = ''",
                                            (line_id,))]
        if waiting:
            _dead(tx, waiting, f"not sent: the withdrawal (3507) of row {bchno}, which correcting ticket line "
                  f"TCL{line_id} needs, failed ({reason}); requeue to try again", now_ms)


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


_HELD = """
SELECT count(*) FROM outbox o JOIN events e ON e.id = o.event_id LEFT JOIN ticket_lines l ON l.id = e.line_id
LEFT JOIN tickets t ON t.id = l.ticket_id
WHERE o.state = 'pending' AND o.infno IN ('3505', '3506') AND o.live_bchno = '' AND (
  (e.line_id IS NULL AND o.ready_ms > ?)
  OR (e.line_id IS NOT NULL AND l.scans < l.needed AND (t.received_ms > ? OR EXISTS (
      SELECT 1 FROM outbox m JOIN events me ON me.id = m.event_id WHERE me.line_id = e.line_id AND m.ready_ms > ?))))
"""


def state_counts(tx: Tx, *, now_ms: int = 0, sale_hold_ms: int = 0) -> dict[str, int]:
    """Rows per state; `retrying` (failed-retryable) counts the sending rows whose request already failed once.
    `withheld`: sale scans their ticket does not sell (kept as evidence, never uploaded); `withdrawn`: rows an
    operator had the platform delete. Given the time and forward.sale_hold_s, `held` counts the pending sale rows
    the planner holds on purpose (their line may still get scans: see the module's text), and `pending` only
    the rows ready to go: a held row is waiting for its timer, not stalled."""
    counts = {state: 0 for state in ("held", "pending", "sending", "done", "dead", "withheld", "withdrawn")}
    counts.update({state: int(count) for state, count in tx.all("SELECT state, count(*) FROM outbox GROUP BY state")})
    if now_ms and sale_hold_ms:
        cutoff = now_ms - sale_hold_ms
        row = tx.one(_HELD, (cutoff, cutoff, cutoff))
        counts["held"] = int(row[0]) if row else 0
        counts["pending"] -= counts["held"]
    row = tx.one("SELECT count(*) FROM outbox o JOIN requests r ON r.id = o.request_id "
                 "WHERE o.state = 'sending' AND r.attempts > 0")
    counts["retrying"] = int(row[0]) if row else 0
    return counts


def live_rows(tx: Tx, *, limit: int = 100) -> list[dict[str, object]]:
    """The rows the platform holds (by fixmedins_bchno), newest first: what an operator may withdraw."""
    rows = tx.all("SELECT live_bchno, institution, infno, count(*), max(changed_ms) FROM outbox WHERE live_bchno <> '' "
                  "GROUP BY live_bchno, institution, infno ORDER BY max(changed_ms) DESC, live_bchno LIMIT ?",
                  (max(1, min(limit, 1000)),))
    names = ("bchno", "institution", "infno", "codes", "changed_ms")
    return [dict(zip(names, row, strict=True)) for row in rows]


def dead_letters(tx: Tx, *, limit: int = 100) -> list[dict[str, object]]:
    rows = tx.all("SELECT o.id, o.event_id, o.institution, o.infno, o.bchno, o.error, o.changed_ms, e.code, "
                  "e.device, e.seq FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.state = 'dead' "
                  "ORDER BY o.changed_ms DESC, o.id DESC LIMIT ?", (max(1, min(limit, 1000)),))
    names = ("id", "event_id", "institution", "infno", "bchno", "error", "changed_ms", "code", "device", "seq")
    return [dict(zip(names, row, strict=True)) for row in rows]


def oldest_unsettled_ms(tx: Tx) -> int | None:
    """When the oldest row not yet settled (pending or sending) last changed; None when every row is settled."""
    row = tx.one("SELECT min(changed_ms) FROM outbox WHERE state IN ('pending', 'sending')")
    return row[0] if row else None


def request_counts(tx: Tx) -> dict[str, int]:
    """Platform requests per state (open: stored and not yet settled)."""
    return {state: int(count) for state, count in tx.all("SELECT state, count(*) FROM requests GROUP BY state")}


def ask_withdrawal(tx: Tx, bchno: str, *, reason: str, operator: str, now_ms: int) -> withdrawals.Withdrawal:
    """An operator's withdrawal of the accepted row `bchno` (gateway.domain.withdrawals), refused at once
    (WithdrawalError) when the platform holds no such row, the gateway is correcting it, a withdrawal of it is under
    way, or an accepted return names it."""
    withdrawals.check(reason, operator)
    tx.lock([PLAN_LOCK])  # the planner may be about to withdraw or correct the same row
    holders = [(row[0], row[1], row[2]) for row in tx.all("SELECT institution, infno, state FROM outbox "
                                                          "WHERE live_bchno = ?", (bchno,))]
    holders = holders or adjustments.rows_held_as(tx, bchno)
    if not holders:
        raise withdrawals.WithdrawalError("missing", f"no row {bchno!r} is held by the platform (see trace-gateway "
                                          "outbox --rows)")
    if any(state != "done" for _, _, state in holders):
        raise withdrawals.WithdrawalError("conflict", f"row {bchno} is being corrected by the gateway (a 3507 and a "
                                          "corrected row): withdraw the corrected row once it is accepted")
    if withdrawals.under_way(tx, bchno) or \
            tx.one("SELECT 1 FROM requests WHERE withdraws = ? AND state = 'open'", (bchno,)) is not None:
        raise withdrawals.WithdrawalError("conflict", f"a withdrawal of row {bchno} is under way")
    returned = tx.one("SELECT bchno FROM outbox WHERE ref_bchno = ? AND infno = '3506' AND state IN "
                      "('sending', 'done') LIMIT 1", (bchno,))
    if returned is not None:
        raise withdrawals.WithdrawalError("conflict", f"row {bchno} is named by the accepted return {returned[0]} "
                                          "(3506): withdraw the return first")
    institution, infno, _ = holders[0]
    return withdrawals.record(tx, bchno, institution=institution, infno=infno, reason=reason, operator=operator,
                              now_ms=now_ms)


def record_sign_in(tx: Tx, institution: str, infno: str, *, msgid: str, now_ms: int) -> int:
    """A request row kept as the record of a sign-in (its id makes the msgid unique); its id."""
    row = tx.one("INSERT INTO requests (institution, infno, msgid, body, state, next_ms, created_ms) "
                 "VALUES (?, ?, ?, ?, 'sign-in', 0, ?) RETURNING id", (institution, infno, msgid, b"", now_ms))
    assert row is not None
    return int(row[0])


def sign_in_sent(tx: Tx, request_id: int, *, msgid: str, body: bytes) -> None:
    tx.write("UPDATE requests SET msgid = ?, body = ? WHERE id = ?", (msgid, body, request_id))


def sign_in_answered(tx: Tx, msgid: str, *, now_ms: int) -> None:
    tx.write("UPDATE requests SET state = 'signed-in', done_ms = ? WHERE msgid = ?", (now_ms, msgid))
