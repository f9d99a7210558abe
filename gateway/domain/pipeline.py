"""One commit of an ingest batch: store events, verdicts, ledger, tickets, rates, alerts, all in one transaction.

Events are unique on (device, seq) and keep their exact signed bytes; a
retransmission of stored bytes is counted, not stored twice; the same seq with
other bytes is a replay and goes to quarantine with every other refused message.
Acks and verdicts may be sent once `commit` has returned: what they say is durable.

Several gateway instances may commit to one PostgreSQL database at once (a shared subscription hands one
device's messages to any of them). A batch first locks what it judges (its devices, their terminals, the
codes it scans, the terminals of its tickets) so two instances never judge one code or one ticket side by
side, and the whole batch runs again if the database reports a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.domain import catalog, control, devices, ledger, matching, outbox, quarantine, rates, tickets
from gateway.domain.matching import Matching
from gateway.domain.quarantine import Bounds, Rejected
from gateway.domain.scans import SALES, StoredScan
from gateway.rules import Rules
from gateway.store.base import Store, Tx, retrying
from gateway.wire.commands import Answer
from gateway.wire.protocol import Event, Operation, ProtocolError, Verdict
from gateway.wire.status import Status
from gateway.wire.ticket import Ticket, TicketError

__all__ = ["Accepted", "Rejected", "TicketIn", "AnswerIn", "TicketOutcome", "DeviceAck", "CommitResult", "commit",
           "sweep"]


@dataclass(frozen=True)
class Accepted:
    """An event whose MAC verified and whose fields passed the schema."""

    event: Event
    signed: bytes
    """The exact COSE_Mac0 bytes as received."""
    received_ms: int


@dataclass(frozen=True)
class TicketIn:
    """A parsed POS ticket and the message it came in (quarantined if the ticket is refused)."""

    ticket: Ticket
    topic: str
    message: bytes
    received_ms: int


@dataclass(frozen=True)
class AnswerIn:
    """A device's verified answer to a command, with its exact signed bytes (kept as evidence)."""

    answer: Answer
    signed: bytes
    received_ms: int


@dataclass(frozen=True)
class TicketOutcome:
    entry: TicketIn
    result: str
    """stored, repeated (the same content again), or refused."""
    ticket_id: int = 0
    error: str = ""
    reason: str = ""


@dataclass
class DeviceAck:
    """What one device is told after a commit."""

    acked_seq: int
    """Every seq from 1 to this one is stored."""
    verdicts: list[tuple[int, Verdict]] = field(default_factory=list)


@dataclass
class CommitResult:
    acks: dict[str, DeviceAck] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    """Reason -> messages quarantined in this commit (replays and refused tickets included)."""
    tickets: list[TicketOutcome] = field(default_factory=list)
    """One per ticket given, in order."""
    answers_recorded: int = 0
    answers_unmatched: int = 0
    """Answers to no command in the audit log (the automatic time commands, or an answer seen before)."""


def commit(store: Store, rules: Rules, *, accepted: Iterable[Accepted] = (), rejected: Iterable[Rejected] = (),
           statuses: Iterable[tuple[Status, int]] = (), tickets_in: Iterable[TicketIn] = (),
           instance: str = "", bounds: Bounds | None = None, answers: Iterable[AnswerIn] = ()) -> CommitResult:
    """Everything of one batch in one transaction; acks and verdicts in the result. `instance` (the gateway's
    client id) is kept with each stored event; when `bounds` are given, the quarantine is trimmed to them."""
    batch_items = (list(accepted), list(rejected), list(statuses), list(tickets_in))
    answer_items = list(answers)
    return retrying(lambda: _commit_once(store, rules, *batch_items, instance, bounds, answer_items))


def _commit_once(store: Store, rules: Rules, accepted: list[Accepted], rejected: list[Rejected],
                 statuses: list[tuple[Status, int]], tickets_in: list[TicketIn], instance: str,
                 bounds: Bounds | None, answers: list[AnswerIn]) -> CommitResult:
    result = CommitResult()
    with store.transaction() as tx:
        batch = _Batch(tx, rules, result, instance)
        tx.lock(batch.keys(accepted, rejected, statuses, tickets_in))
        batch.look_up(accepted)
        for item in accepted:
            batch.event(item)
        for refusal in rejected:
            batch.quarantine(refusal)
        for status, received_ms in statuses:
            try:
                devices.record_status(tx, status, rules, now_ms=received_ms)
            except ProtocolError as error:
                batch.quarantine(Rejected(f"tc/v1/{status.device}/status", status.device, error.reason, str(error),
                                          b"", received_ms))
        for entry in tickets_in:
            batch.ticket(entry)
        for answer in answers:
            if control.record_answer(tx, answer.answer, answer.signed, now_ms=answer.received_ms):
                result.answers_recorded += 1
            else:
                result.answers_unmatched += 1
        batch.book_counts()
        if bounds is not None:
            quarantine.trim(tx, bounds)
        for device, ack in result.acks.items():
            ack.acked_seq = batch.advance(device)
    return result


def sweep(store: Store, rules: Rules, *, now_ms: int) -> None:
    """The time-based rules: offline devices, ticket lines left unscanned (one instance at a time, holding the
    terminals whose lines it checks, and the outbox's planning lock when there are any: a loose scan it ties to
    a ticket may be in a platform row)."""
    def once() -> None:
        with store.transaction() as tx:
            terminals = [f"terminal:{terminal}" for terminal in matching.due_terminals(tx, now_ms)]
            tx.lock(["sweep", *terminals, *([outbox.PLAN_LOCK] if terminals else [])])
            devices.check_offline(tx, rules, now_ms=now_ms)
            matching.check_due_lines(tx, rules, now_ms)

    retrying(once)


class _Batch:
    def __init__(self, tx: Tx, rules: Rules, result: CommitResult, instance: str) -> None:
        self.tx = tx
        self.instance = instance
        self.rules = rules
        self.result = result
        self._places: dict[str, tuple[str, str, str, str]] = {}
        self._products: dict[str, catalog.Product | None] = {}
        self._stored: dict[tuple[str, int], tuple[bytes, int]] = {}
        """(device, seq) -> (signed, verdict) of this batch's events already in the store, and of those it stores."""
        self._counts: dict[str, tuple[int, int, int]] = {}
        """Device -> (events stored, highest seq, last receipt) in this batch, written once by `book_counts`."""
        self._acks: dict[str, tuple[int, int]] = {}
        """Device -> (acked seq, highest stored seq) before this batch."""
        self._catalog_empty = tx.one("SELECT 1 FROM products LIMIT 1") is None
        self.tally = rates.HourDeltas()
        """The batch's rate deltas, written once per hour row by `book_counts`."""

    def look_up(self, accepted: list[Accepted]) -> None:
        """Which of the batch's events are stored already, and where its devices' acks stand: a query per
        400 events and one per 400 devices, not one per event (round trips are what PostgreSQL costs)."""
        pairs = sorted({(item.event.device, item.event.seq) for item in accepted})
        for start in range(0, len(pairs), 400):
            chunk = pairs[start:start + 400]
            for row in self.tx.all(f"SELECT device, seq, signed, verdict FROM events WHERE (device, seq) IN "
                                   f"(VALUES {','.join(['(?, ?)'] * len(chunk))})",
                                   [value for pair in chunk for value in pair]):
                self._stored[(row[0], int(row[1]))] = (bytes(row[2]), int(row[3]))
        devices = sorted({device for device, _ in pairs})
        for start in range(0, len(devices), 400):
            part = devices[start:start + 400]
            for device, acked, max_seq in self.tx.all(f"SELECT device, acked_seq, max_seq FROM device_state "
                                                      f"WHERE device IN ({','.join('?' * len(part))})", part):
                self._acks[device] = (int(acked), int(max_seq))

    def advance(self, device: str) -> int:
        """Move the device's ack over its contiguous stored seqs; return it. The batch's own events need no
        query; events stored by earlier batches beyond them (a device resending out of order) do."""
        acked, stored_max = self._acks.get(device, (0, 0))
        before = acked
        while (device, acked + 1) in self._stored:
            acked += 1
        while stored_max > acked:
            following = self.tx.all("SELECT seq FROM events WHERE device = ? AND seq > ? ORDER BY seq LIMIT 500",
                                    (device, acked))
            run = acked
            for (seq,) in following:
                if seq != run + 1:
                    break
                run = seq
            if run == acked:
                break
            acked = run
            while (device, acked + 1) in self._stored:
                acked += 1
        if acked > before:
            self.tx.write("UPDATE device_state SET acked_seq = ? WHERE device = ? AND acked_seq < ?",
                          (acked, device, acked))
        return acked

    def book_counts(self) -> None:
        """Write what the batch summed: each device's counts, each hour row's rates."""
        self.tally.write(self.tx)
        for device, (stored, max_seq, last_ms) in self._counts.items():
            self.tx.write("INSERT INTO device_state (device, max_seq, stored, last_event_ms) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (device) DO UPDATE SET stored = device_state.stored + excluded.stored, "
                          "max_seq = CASE WHEN device_state.max_seq > excluded.max_seq THEN device_state.max_seq "
                          "ELSE excluded.max_seq END, last_event_ms = excluded.last_event_ms",
                          (device, max_seq, stored, last_ms))

    def _product(self, pid: str) -> catalog.Product | None:
        if pid not in self._products:
            self._products[pid] = catalog.product_of(self.tx, pid)
        return self._products[pid]

    def keys(self, accepted: list[Accepted], rejected: list[Rejected], statuses: list[tuple[Status, int]],
             tickets_in: list[TicketIn]) -> list[str]:
        """What this batch must hold alone: its devices, their terminals, its codes, its tickets' terminals (and,
        with tickets, the outbox's planning lock).
        Learns where each of its devices stands (terminal, institution) on the way, one query per 500."""
        names = {item.event.device for item in accepted} | {item.device for item in rejected if item.device}
        names |= {status.device for status, _ in statuses}
        listed = sorted(names)
        for start in range(0, len(listed), 500):
            part = listed[start:start + 500]
            for device, *place in self.tx.all("SELECT device, terminal, institution, institution_type, region "
                                              f"FROM devices WHERE device IN ({','.join('?' * len(part))})", part):
                self._places[device] = (place[0], place[1], place[2], place[3])
        keys = {f"device:{name}" for name in names} | {f"code:{item.event.code}" for item in accepted
                                                        if item.event.code}
        terminals = {entry.ticket.terminal for entry in tickets_in} | {place[0] for place in self._places.values()}
        if tickets_in:  # a ticket may claim scans already in the outbox: not while requests are planned
            keys.add(outbox.PLAN_LOCK)
        return sorted(keys | {f"terminal:{terminal}" for terminal in terminals})

    def _place(self, device: str) -> tuple[str, str, str, str]:
        """(terminal, institution, institution type, region) of a device of this batch; blanks if unregistered."""
        return self._places.get(device, ("", "", "", ""))

    def event(self, item: Accepted) -> None:
        tx, event, result = self.tx, item.event, self.result
        ack = result.acks.setdefault(event.device, DeviceAck(acked_seq=0))
        row = self._stored.get((event.device, event.seq))
        if row is not None:
            if row[0] == item.signed:
                result.duplicates += 1
                tx.write("UPDATE device_state SET duplicates = duplicates + 1 WHERE device = ?", (event.device,))
                ack.verdicts.append((event.seq, Verdict(row[1])))
            else:
                self.quarantine(Rejected(f"tc/v1/{event.device}/ev", event.device, "replay",
                                         f"seq {event.seq} already stored with other bytes", item.signed,
                                         item.received_ms))
            return
        acked = self._acks.get(event.device, (0, 0))[0]
        if event.seq > acked + self.rules.seq_window:  # from the ack: max_seq, and so missing seqs, stay bounded
            self.quarantine(Rejected(f"tc/v1/{event.device}/ev", event.device, "seq_out_of_window",
                                     f"seq {event.seq}: the acknowledged one is {acked}, the window "
                                     f"{self.rules.seq_window}", item.signed, item.received_ms))
            return
        terminal, institution, institution_type, region = self._place(event.device)
        product = self._product(event.pid) if not event.err else None
        event_ms = event.time_ms if event.clock and event.time_ms else item.received_ms
        stored = tx.one(
            "INSERT INTO events (device, seq, received_ms, signed, boot, device_time_ms, clock, event_ms, terminal, "
            "institution, op, kind, code, pid, serial, lot, expiry, made, err, ticket, split_qty, list_code, verdict, "
            "instance) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?) RETURNING id",
            (event.device, event.seq, item.received_ms, item.signed, event.boot, event.time_ms, event.clock, event_ms,
             terminal, institution, int(event.op), event.kind, event.code, event.pid, event.serial, event.lot,
             event.expiry, event.made, event.err, event.ticket, event.split_qty,
             product.list_code if product else "", self.instance))
        assert stored is not None
        stored_before, max_seq, _ = self._counts.get(event.device, (0, 0, 0))
        self._counts[event.device] = (stored_before + 1, max(max_seq, event.seq), item.received_ms)
        scan = StoredScan(id=int(stored[0]), device=event.device, terminal=terminal, institution=institution,
                          institution_type=institution_type, region=region, op=event.op, code=event.code,
                          pid=event.pid, err=event.err, ticket=event.ticket, split_qty=event.split_qty,
                          event_ms=event_ms, list_code=product.list_code if product else "",
                          pack_size=product.pack_size if product else 0)
        verdict = self._judge(scan, known=product is not None)
        if verdict != Verdict.OK:  # stored as OK (0)
            tx.write("UPDATE events SET verdict = ? WHERE id = ?", (int(verdict), scan.id))
        self._stored[(event.device, event.seq)] = (item.signed, int(verdict))
        outbox.enqueue(tx, scan, now_ms=item.received_ms)
        result.stored += 1
        ack.verdicts.append((event.seq, verdict))

    def _judge(self, scan: StoredScan, *, known: bool) -> Verdict:
        """Book the scan everywhere it counts; the counter's verdict."""
        is_sale = scan.op in SALES
        self.tally.add(scan.institution, scan.terminal, scan.event_ms, scans=1, stored=int(not scan.err),
                       valid_scans=int(not scan.err), sale_scans=int(is_sale and not scan.err))
        if scan.err:
            return Verdict.INVALID_CODE
        duplicate = ledger.apply(self.tx, scan, self.rules)
        placed = (matching.match_scan(self.tx, self.tally, scan, self.rules, duplicate=duplicate) if is_sale
                  else Matching.NONE)
        if duplicate:
            self.tally.add(scan.institution, scan.terminal, scan.event_ms, duplicate_sales=1)
            return Verdict.DUPLICATE_SALE
        if placed == Matching.MISMATCH:
            return Verdict.PRODUCT_MISMATCH
        if not known and not self._catalog_empty and scan.op != Operation.STOCKTAKE:
            return Verdict.UNKNOWN_PRODUCT
        return Verdict.OK

    def ticket(self, entry: TicketIn) -> None:
        try:
            ticket_id, new = tickets.record_ticket(self.tx, self.tally, entry.ticket, self.rules,
                                                   received_ms=entry.received_ms)
        except TicketError as error:
            self.result.tickets.append(TicketOutcome(entry, "refused", error=error.detail, reason=error.reason))
            self.quarantine(Rejected(entry.topic, "", error.reason, error.detail, entry.message, entry.received_ms))
        else:
            self.result.tickets.append(TicketOutcome(entry, "stored" if new else "repeated", ticket_id))

    def quarantine(self, refusal: Rejected) -> None:
        quarantine.keep(self.tx, refusal)
        self.result.quarantined[refusal.reason] = self.result.quarantined.get(refusal.reason, 0) + 1
        if refusal.reason == "bad_mac" and refusal.device:
            terminal, institution, _, _ = self._place(refusal.device)
            quarantine.mac_failures(self.tx, self.rules, refusal, institution=institution, terminal=terminal)
