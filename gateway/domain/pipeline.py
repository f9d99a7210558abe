"""One commit of an ingest batch: store events, verdicts, ledger, tickets, rates, alerts, all in one transaction.

An event is judged top to bottom in `_BatchState.event`: a retransmission is counted and a replay or an event
beyond the seq window refused; a new event is stored (its signed bytes are evidence, whatever its verdict); its
`Ruling` is decided once from what the owners of the tables find, read only (the ledger: a duplicate sale; the
tickets already here: where it goes on one); then what the ruling causes is applied, each through the module that
owns the tables, in this order: the verdict (scans), the ledger and stock (ledger) and the alerts it raises
(alerts), its place on a ticket (matching), the rates (rates), the platform row (outbox), the device's ack.
A new ticket is stored (tickets), then claims the scans stored before it that wait for it (matching).

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

from gateway.domain import (
    alerts,
    catalog,
    control,
    devices,
    ledger,
    matching,
    outbox,
    quarantine,
    rates,
    scans,
    tickets,
)
from gateway.domain.matching import Matching
from gateway.domain.quarantine import Bounds, Rejected
from gateway.domain.scans import SALES, StoredScan
from gateway.rules import Rules
from gateway.store.base import Store, Tx, retrying
from gateway.wire import topics
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
        batch = _BatchState(tx, rules, result, instance)
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
                batch.quarantine(Rejected(topics.status(status.device), status.device, error.reason, str(error),
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
            terminals = [f"terminal:{terminal}" for terminal in tickets.due_terminals(tx, now_ms)]
            tx.lock(["sweep", *terminals, *([outbox.PLAN_LOCK] if terminals else [])])
            devices.check_offline(tx, rules, now_ms=now_ms)
            matching.check_due_lines(tx, rules, now_ms)

    retrying(once)


@dataclass(frozen=True)
class Ruling:
    """The judgment of one stored event, decided once before any of its consequences is written."""

    verdict: Verdict
    sale: ledger.Sale | None
    """What the ledger found of a valid sale scan (a duplicate, the code's earlier sale); None for other scans."""
    ticket_place: matching.TicketPlace | None
    """Where a sale scan goes on a ticket already here; None when there is none (yet)."""


def _verdict(scan: StoredScan, *, duplicate: bool, ticket_place: matching.TicketPlace | None, known: bool,
             catalog_empty: bool) -> Verdict:
    """The counter's verdict, the first rule that holds."""
    if scan.err:
        return Verdict.INVALID_CODE
    if duplicate:
        return Verdict.DUPLICATE_SALE
    if ticket_place is not None and ticket_place.placement.matching == Matching.MISMATCH:
        return Verdict.PRODUCT_MISMATCH
    if not known and not catalog_empty and scan.op != Operation.STOCKTAKE:
        return Verdict.UNKNOWN_PRODUCT
    return Verdict.OK


class _BatchState:
    """One batch inside its transaction: where its devices stand, their acks, its events already stored, the
    products it met, and the sums (device counts, rates) it writes once at the end."""

    def __init__(self, tx: Tx, rules: Rules, result: CommitResult, instance: str) -> None:
        self.tx = tx
        self.instance = instance
        self.rules = rules
        self.result = result
        self._places: dict[str, devices.Place] = {}
        self._products: dict[str, catalog.Product | None] = {}
        self._stored: dict[tuple[str, int], tuple[bytes, int]] = {}
        """(device, seq) -> (signed, verdict) of this batch's events already in the store, and of those it stores."""
        self._counts: dict[str, tuple[int, int, int]] = {}
        """Device -> (events stored, highest seq, last receipt) in this batch, written once by `book_counts`."""
        self._acks: dict[str, tuple[int, int]] = {}
        """Device -> (acked seq, highest stored seq) before this batch."""
        self._catalog_empty = catalog.is_empty(tx)
        self.hour_deltas = rates.HourDeltas()
        """The batch's rate deltas, written once per hour row by `book_counts`."""

    def keys(self, accepted: list[Accepted], rejected: list[Rejected], statuses: list[tuple[Status, int]],
             tickets_in: list[TicketIn]) -> list[str]:
        """What this batch must hold alone: its devices, their terminals, its codes, its tickets' terminals (and,
        with tickets, the outbox's planning lock).
        Learns where each of its devices stands (terminal, institution) on the way, one query per 500."""
        names = {item.event.device for item in accepted} | {item.device for item in rejected if item.device}
        names |= {status.device for status, _ in statuses}
        self._places = devices.places_of(self.tx, names)
        keys = {f"device:{name}" for name in names} | {f"code:{item.event.code}" for item in accepted
                                                        if item.event.code}
        terminals = {entry.ticket.terminal for entry in tickets_in}
        terminals |= {place.terminal for place in self._places.values()}
        if tickets_in:  # a ticket may claim scans already in the outbox: not while requests are planned
            keys.add(outbox.PLAN_LOCK)
        return sorted(keys | {f"terminal:{terminal}" for terminal in terminals})

    def look_up(self, accepted: list[Accepted]) -> None:
        """Which of the batch's events are stored already, and where its devices' acks stand: a query per
        400 events and one per 400 devices, not one per event (round trips are what PostgreSQL costs)."""
        pairs = {(item.event.device, item.event.seq) for item in accepted}
        self._stored = scans.stored_events(self.tx, pairs)
        self._acks = devices.ack_positions(self.tx, {device for device, _ in pairs})

    def event(self, item: Accepted) -> None:
        """Judge one event, top to bottom."""
        tx, event, rules = self.tx, item.event, self.rules
        ack = self.result.acks.setdefault(event.device, DeviceAck(acked_seq=0))
        earlier = self._stored.get((event.device, event.seq))
        if earlier is not None:
            self._again(item, earlier, ack)
            return
        acked = self._acks.get(event.device, (0, 0))[0]
        if event.seq > acked + rules.seq_window:  # from the ack: max_seq, and so missing seqs, stay bounded
            self.quarantine(Rejected(topics.events(event.device), event.device, "seq_out_of_window",
                                     f"seq {event.seq}: the acknowledged one is {acked}, the window "
                                     f"{rules.seq_window}", item.signed, item.received_ms))
            return
        scan, known = self._store(item)
        ruling = self._decide(scan, known=known)
        # its consequences, each through the owner of its tables, in this order
        if ruling.verdict != Verdict.OK:  # stored as OK (0)
            scans.set_verdict(tx, scan.id, int(ruling.verdict))
        for finding in ledger.book(tx, scan, ruling.sale, rules):
            alerts.raise_found(tx, finding)
        if ruling.ticket_place is not None:
            for finding in matching.bind_scan(tx, self.hour_deltas, scan, ruling.ticket_place):
                alerts.raise_found(tx, finding)
        valid = int(not scan.err)
        duplicate = int(ruling.verdict == Verdict.DUPLICATE_SALE)
        self.hour_deltas.add(scan.institution, scan.terminal, scan.event_ms, scans=1, stored=valid, valid_scans=valid,
                       sale_scans=int(scan.op in SALES and valid), duplicate_sales=duplicate)
        outbox.enqueue(tx, scan, now_ms=item.received_ms)
        self._stored[(event.device, event.seq)] = (item.signed, int(ruling.verdict))
        self.result.stored += 1
        ack.verdicts.append((event.seq, ruling.verdict))

    def _again(self, item: Accepted, earlier: tuple[bytes, int], ack: DeviceAck) -> None:
        """An event whose seq is stored: the same bytes are a retransmission (its verdict again), others a replay."""
        event = item.event
        if earlier[0] == item.signed:
            self.result.duplicates += 1
            devices.count_duplicate(self.tx, event.device)
            ack.verdicts.append((event.seq, Verdict(earlier[1])))
        else:
            self.quarantine(Rejected(topics.events(event.device), event.device, "replay",
                                     f"seq {event.seq} already stored with other bytes", item.signed,
                                     item.received_ms))

    def _store(self, item: Accepted) -> tuple[StoredScan, bool]:
        """Keep a new event (verdict OK until decided); the scan as the rules see it, and whether the catalog
        knows its product."""
        event = item.event
        place = self._places.get(event.device, devices.Place())
        product = self._product(event.pid) if not event.err else None
        event_ms = event.time_ms if event.clock and event.time_ms else item.received_ms
        list_code = product.list_code if product else ""
        event_id = scans.store_event(self.tx, event, signed=item.signed, received_ms=item.received_ms,
                                     event_ms=event_ms, terminal=place.terminal, institution=place.institution,
                                     list_code=list_code, instance=self.instance)
        stored_before, max_seq, _ = self._counts.get(event.device, (0, 0, 0))
        self._counts[event.device] = (stored_before + 1, max(max_seq, event.seq), item.received_ms)
        scan = StoredScan(id=event_id, device=event.device, terminal=place.terminal, institution=place.institution,
                          institution_type=place.institution_type, region=place.region, op=event.op,
                          code=event.code, pid=event.pid, err=event.err, ticket=event.ticket,
                          split_qty=event.split_qty, event_ms=event_ms, list_code=list_code,
                          pack_size=product.pack_size if product else 0)
        return scan, product is not None

    def _decide(self, scan: StoredScan, *, known: bool) -> Ruling:
        """The ruling on a stored scan, from what the ledger and the tickets say of it (nothing is written)."""
        if scan.err:
            return Ruling(Verdict.INVALID_CODE, None, None)
        sale = ledger.judge_sale(self.tx, scan)
        duplicate = sale is not None and sale.duplicate
        ticket_place = (matching.find_place(self.tx, scan, self.rules, duplicate=duplicate) if scan.op in SALES
                        else None)
        verdict = _verdict(scan, duplicate=duplicate, ticket_place=ticket_place, known=known,
                           catalog_empty=self._catalog_empty)
        return Ruling(verdict, sale, ticket_place)

    def _product(self, pid: str) -> catalog.Product | None:
        if pid not in self._products:
            self._products[pid] = catalog.product_of(self.tx, pid)
        return self._products[pid]

    def ticket(self, entry: TicketIn) -> None:
        try:
            ticket_id, new = tickets.record_ticket(self.tx, self.hour_deltas, entry.ticket, self.rules,
                                                   received_ms=entry.received_ms)
            if new is not None:  # the scans stored before it that wait for it
                matching.claim(self.tx, self.hour_deltas, new, self.rules, received_ms=entry.received_ms)
        except TicketError as error:
            self.result.tickets.append(TicketOutcome(entry, "refused", error=error.detail, reason=error.reason))
            self.quarantine(Rejected(entry.topic, "", error.reason, error.detail, entry.message, entry.received_ms))
        else:
            self.result.tickets.append(TicketOutcome(entry, "stored" if new is not None else "repeated", ticket_id))

    def quarantine(self, refusal: Rejected) -> None:
        quarantine.keep(self.tx, refusal)
        self.result.quarantined[refusal.reason] = self.result.quarantined.get(refusal.reason, 0) + 1
        if refusal.reason == "bad_mac" and refusal.device:
            place = self._places.get(refusal.device, devices.Place())
            quarantine.mac_failures(self.tx, self.rules, refusal, institution=place.institution,
                                    terminal=place.terminal)

    def book_counts(self) -> None:
        """Write what the batch summed: each device's counts, each hour row's rates."""
        self.hour_deltas.write(self.tx)
        for device, (stored, max_seq, last_ms) in self._counts.items():
            devices.add_stored(self.tx, device, stored=stored, max_seq=max_seq, last_event_ms=last_ms)

    def advance(self, device: str) -> int:
        """Move the device's ack over its contiguous stored seqs; return it. The batch's own events need no
        query; events stored by earlier batches beyond them (a device resending out of order) do."""
        acked, stored_max = self._acks.get(device, (0, 0))
        before = acked
        while (device, acked + 1) in self._stored:
            acked += 1
        while stored_max > acked:
            run = acked
            for seq in scans.seqs_after(self.tx, device, acked, limit=500):
                if seq != run + 1:
                    break
                run = seq
            if run == acked:
                break
            acked = run
            while (device, acked + 1) in self._stored:
                acked += 1
        if acked > before:
            devices.advance_ack(self.tx, device, acked)
        return acked
