"""A small world for the supervision rules: a real store (SQLite, or PostgreSQL with --store postgresql),
registered counters, scans decoded by the firmware's own decoder, tickets, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from stores import fresh_location

from gateway.domain import alerts, catalog, pipeline, rates
from gateway.rules import Rules
from gateway.store.base import Device
from gateway.store.opening import open_store
from gateway.wire.protocol import Event, Operation, Verdict
from gateway.wire.status import Status
from gateway.wire.ticket import parse_ticket
from tcagent.codec import codes

ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 22, tzinfo=ZONE)
CATALOG = """pid,list_code,name,pack_size,code_required
8123456,XA01,Amoxicillin capsules 0.25g x 24,24,1
8654321,XB02,Ibuprofen tablets 0.2g x 20,20,1
06901234567892,XC03,Imported insulin pen,1,1
8111111,XD04,Herbal granules (exempt),10,0
"""


def code(serial: int, prefix: str = "8123456") -> str:
    return f"{prefix}{serial:013d}"


def at(hour: int, minute: int = 0, second: int = 0) -> int:
    """ms since the epoch at this time of the scenario's day (Asia/Shanghai)."""
    return int(DAY.replace(hour=hour, minute=minute, second=second).timestamp() * 1000)


class Scenario:
    def __init__(self, folder, rules: Rules | None = None, *, with_catalog: bool = True, location: str = "") -> None:
        """A new store in `folder` (or a new PostgreSQL database), or the existing one at `location`."""
        self.rules = rules or Rules()
        self.location = location or fresh_location(folder)
        self.store = open_store(self.location)
        self.seqs: dict[str, int] = {}
        self.places: dict[str, Device] = {}
        if with_catalog:
            with self.store.transaction() as tx:
                catalog.replace_products(tx, catalog.read_csv(CATALOG))

    def counter(self, device: str, terminal: str, institution: str, *, kind: str = "pharmacy",
                region: str = "440300") -> None:
        place = Device(device=device, key=bytes(32), terminal=terminal, institution=institution,
                       institution_type=kind, region=region)
        self.places[device] = place
        self.store.add_device(place)

    def scan(self, device: str, text: str, when: int, *, op: Operation = Operation.SALE, ticket: str = "",
             split: int = 0, clock: int = 1, received: int = 0) -> Verdict:
        """One scan at `device` at `when`, committed as received at `received` (default: at once); the verdict its
        counter hears."""
        event = self._event(device, text, when, op=op, ticket=ticket, split=split, clock=clock)
        accepted = [pipeline.Accepted(event, f"{device}/{event.seq}".encode(), received or when)]
        result = pipeline.commit(self.store, self.rules, accepted=accepted)
        return result.acks[device].verdicts[-1][1]

    def scan_many(self, device: str, texts: list[str], when: int, *, op: Operation) -> None:
        """Scans at `device`, all at `when`, committed in one batch (a delivery taken in)."""
        accepted = []
        for text in texts:
            event = self._event(device, text, when, op=op)
            accepted.append(pipeline.Accepted(event, f"{device}/{event.seq}".encode(), when))
        pipeline.commit(self.store, self.rules, accepted=accepted)

    def _event(self, device: str, text: str, when: int, *, op: Operation, ticket: str = "", split: int = 0,
               clock: int = 1) -> Event:
        """The event `device` sends for scanning `text` (the firmware's decoder gives bytes; events carry str)."""
        seq = self.seqs[device] = self.seqs.get(device, 0) + 1
        scan = codes.decode(text.encode())
        return Event(device=device, seq=seq, boot=1, time_ms=when if clock else 0, uptime_ms=seq, clock=clock,
                     op=op, raw=scan.raw, aim=scan.aim.decode(), kind=scan.kind, code=scan.code.decode(),
                     pid=scan.pid.decode(), serial=scan.serial.decode(), lot=scan.lot.decode(),
                     expiry=scan.expiry.decode(), made=scan.made.decode(), err=scan.err, ticket=ticket,
                     split_qty=split)

    def ticket(self, terminal: str, number: str, when: int, *lines: tuple[str, int] | tuple[str, int, bool],
               institution: str = "", received: int = 0) -> pipeline.TicketOutcome:
        body = {"number": number, "terminal": terminal, "time": when,
                "lines": [{"list_code": line[0], "quantity": line[1], "split": bool(line[2:] and line[2])}
                          for line in lines]}
        if institution:
            body["institution"] = institution
        entry = pipeline.TicketIn(parse_ticket(body), "test", b"{}", received or when)
        return pipeline.commit(self.store, self.rules, tickets_in=[entry]).tickets[0]

    def status(self, device: str, when: int, **fields: object) -> None:
        status = Status(device=device, online=bool(fields.pop("online", True)), **fields)  # type: ignore[arg-type]
        pipeline.commit(self.store, self.rules, statuses=[(status, when)])

    def sweep(self, when: int) -> None:
        pipeline.sweep(self.store, self.rules, now_ms=when)

    def alerts(self, kind: str = "", state: str = "") -> list[alerts.Alert]:
        with self.store.reading() as tx:
            return alerts.list_alerts(tx, kind=kind, state=state)

    def alert_types(self) -> list[str]:
        return sorted(alert.type for alert in self.alerts())

    def rates(self, scope: str = "terminal", **filters: str) -> dict[str, rates.RateRow]:
        with self.store.reading() as tx:
            rows = rates.query(tx, rates.day_period(DAY.date(), self.rules.timezone), scope=scope, **filters)
        return {row.terminal or row.institution: row for row in rows}

    def event_ids(self, device: str) -> list[int]:
        return [row[0] for row in self.store.query("SELECT id FROM events WHERE device = ? ORDER BY seq", (device,))]

    def close(self) -> None:
        self.store.close()


@contextmanager
def one_counter(folder, institution: str, rules: Rules | None = None) -> Iterator[Scenario]:
    """A Scenario with one pharmacy counter (device dev-a at terminal A1 of `institution`), closed on leaving:
    the world most test modules start from."""
    world = Scenario(folder, rules)
    try:
        world.counter("dev-a", "A1", institution)
        yield world
    finally:
        world.close()
