"""Offline analysis: load JSONL exports into a fresh store, in time order, and report rates and alerts.

A folder holds any of (docs/operations.md, "Offline analysis"):

- `catalog.csv`: the product catalog (catalog.py);
- `devices.jsonl`: `{"device", "terminal", "institution", "institution_type", "region"}` per line;
- `events.jsonl` and `inbound.jsonl`: one scan per line, `{"time", "terminal", "code", "op"}` and optionally
  `device`, `seq`, `institution`, `institution_type`, `region`, `ticket`, `split_qty`. `op` is a name (sale,
  sale_return, purchase, purchase_return, stocktake, dispense) or its number; inbound lines default to
  purchase. The code is decoded as the device decodes it (gateway/wire/codes.py: kind, product id, validity);
- `tickets.jsonl`: one POS ticket per line, as the API takes it.

Replayed events are not signed: their evidence bytes are the JSON line itself. A bad
line is reported with its file and number and skipped; it never stops the replay.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.domain import alerts, catalog, pipeline, rates
from gateway.errors import GatewayError
from gateway.rules import Rules
from gateway.store.base import Device
from gateway.store.sqlite import SQLiteStore
from gateway.wire import codes
from gateway.wire.protocol import Event, Operation
from gateway.wire.ticket import TicketError, parse_ticket, parse_time

__all__ = ["ReplayError", "replay_folder"]

_OPS = {op.name.lower(): op for op in Operation}
_SWEEP_MS = 60_000
_MAX_REPORTED = 100
_BATCH = 1000


class ReplayError(GatewayError, ValueError):
    """A folder that cannot be replayed at all."""


@dataclass(frozen=True)
class _Record:
    time_ms: int
    order: int
    kind: str
    """"event" or "ticket"."""
    value: Any
    line: bytes


class _Reader:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.records: list[_Record] = []
        self.devices: dict[str, Device] = {}
        self.rejected: list[dict[str, object]] = []
        self.rejected_count = 0
        self._seqs: dict[str, int] = {}

    def refuse(self, where: str, error: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < _MAX_REPORTED:
            self.rejected.append({"where": where, "error": error})

    def lines(self, path: Path) -> list[tuple[str, bytes, Any]]:
        found = []
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                found.append((where, line, json.loads(line)))
            except ValueError as error:
                self.refuse(where, f"not JSON: {error}")
        return found

    def device(self, where: str, data: dict[str, Any]) -> None:
        try:
            device = Device(device=str(data["device"]), key=bytes(32), terminal=str(data["terminal"]),
                            institution=str(data["institution"]),
                            institution_type=str(data.get("institution_type", "pharmacy")),
                            region=str(data.get("region", "")))
        except (KeyError, TypeError) as error:
            self.refuse(where, f"a device needs device, terminal, institution: {error}")
            return
        self.devices[device.device] = device

    def scan(self, where: str, line: bytes, data: Any, default_op: Operation) -> None:
        try:
            record = self._scan(data, default_op)
        except (KeyError, TypeError, ValueError) as error:
            self.refuse(where, f"scan: {error}")
            return
        self.records.append(_Record(record.time_ms, len(self.records), "event", record, line))

    def _scan(self, data: Any, default_op: Operation) -> Event:
        if not isinstance(data, dict):
            raise TypeError("a scan is a JSON object")
        time_ms = _time(data.get("time"), self.rules.timezone)
        terminal = str(data["terminal"])
        device = str(data.get("device") or f"replay-{terminal}")
        if device not in self.devices:
            if "institution" not in data:
                raise KeyError(f"institution (device {device} is not in devices.jsonl)")
            self.devices[device] = Device(device=device, key=bytes(32), terminal=terminal,
                                          institution=str(data["institution"]),
                                          institution_type=str(data.get("institution_type", "pharmacy")),
                                          region=str(data.get("region", "")))
        op_value = data.get("op", default_op.name.lower())
        op = _OPS.get(op_value) if isinstance(op_value, str) else Operation(op_value)
        if op is None:
            raise ValueError(f"op {op_value!r} is none of {', '.join(_OPS)}")
        seq = int(data.get("seq") or self._seqs.get(device, 0) + 1)
        self._seqs[device] = max(seq, self._seqs.get(device, 0))
        scan = codes.decode(str(data["code"]).encode())
        return Event(device=device, seq=seq, boot=0, time_ms=time_ms, uptime_ms=0, clock=1, op=op,
                     raw=scan.raw, aim=scan.aim.decode(), kind=scan.kind, code=scan.code.decode() or str(data["code"]),
                     pid=scan.pid.decode(),
                     serial=scan.serial.decode(), lot=scan.lot.decode(), expiry=scan.expiry.decode(), err=scan.err,
                     made=scan.made.decode(),
                     ticket=str(data.get("ticket", "")), split_qty=int(data.get("split_qty", 0)))

    def ticket(self, where: str, line: bytes, data: Any) -> None:
        try:
            ticket = parse_ticket(data, timezone=self.rules.timezone)
        except TicketError as error:
            self.refuse(where, str(error))
            return
        self.records.append(_Record(ticket.time_ms, len(self.records), "ticket", ticket, line))


def _time(value: object, timezone: str) -> int:
    try:
        return parse_time(value, timezone)
    except TicketError as error:
        raise ValueError(error.detail) from None


def replay_folder(folder: Path, rules: Rules, *, database: Path | None = None) -> dict[str, object]:
    """Replay the exports in `folder` into a fresh store (a temporary one unless `database` is given)."""
    if not folder.is_dir():
        raise ReplayError(f"{folder} is not a folder")
    if database is not None and database.exists():
        raise ReplayError(f"{database} exists; replay fills a fresh store")
    reader = _Reader(rules)
    products: list[catalog.Product] = []
    if (folder / "catalog.csv").exists():
        try:
            products = catalog.read_csv((folder / "catalog.csv").read_text(encoding="utf-8"))
        except catalog.CatalogError as error:
            raise ReplayError(f"catalog.csv: {error}") from None
    for name, handle in (("devices.jsonl", "device"), ("events.jsonl", "sale"), ("inbound.jsonl", "purchase"),
                         ("tickets.jsonl", "ticket")):
        path = folder / name
        if not path.exists():
            continue
        for where, line, data in reader.lines(path):
            if handle == "device":
                reader.device(where, data if isinstance(data, dict) else {})
            elif handle == "ticket":
                reader.ticket(where, line, data)
            else:
                reader.scan(where, line, data, _OPS[handle])
    if not reader.records:
        raise ReplayError(f"{folder}: no events.jsonl, inbound.jsonl or tickets.jsonl records")
    with tempfile.TemporaryDirectory() as scratch:
        store = SQLiteStore(database or Path(scratch) / "replay.sqlite3", durable=False)
        try:
            return _run(store, reader, products, rules)
        finally:
            store.close()


def _commit(store: SQLiteStore, rules: Rules, pending: list[_Record], reader: _Reader) -> None:
    """Consecutive events in one transaction, in order (as ingest commits a batch)."""
    if not pending:
        return
    result = pipeline.commit(store, rules, accepted=[pipeline.Accepted(record.value, record.line, record.time_ms)
                                                     for record in pending])
    for reason, count in result.quarantined.items():
        reader.refuse(f"{count} events", reason)


def _run(store: SQLiteStore, reader: _Reader, products: list[catalog.Product], rules: Rules) -> dict[str, object]:
    with store.transaction() as tx:
        catalog.replace_products(tx, products)
    for device in reader.devices.values():
        store.add_device(device)
    records = sorted(reader.records, key=lambda record: (record.time_ms, record.order))
    next_sweep = records[0].time_ms + _SWEEP_MS
    pending: list[_Record] = []
    for record in records:
        if record.time_ms >= next_sweep or len(pending) >= _BATCH or (pending and record.kind != "event"):
            _commit(store, rules, pending, reader)
            pending = []
        if record.time_ms >= next_sweep:
            pipeline.sweep(store, rules, now_ms=record.time_ms)
            next_sweep = record.time_ms + _SWEEP_MS
        if record.kind == "event":
            pending.append(record)
            continue
        entry = pipeline.TicketIn(record.value, "replay:tickets.jsonl", record.line, record.time_ms)
        outcome = pipeline.commit(store, rules, tickets_in=[entry]).tickets[0]
        if outcome.result == "refused":
            reader.refuse(f"ticket {record.value.number}", f"{outcome.reason}: {outcome.error}")
    _commit(store, rules, pending, reader)
    last = records[-1].time_ms
    pipeline.sweep(store, rules, now_ms=last + rules.unscanned_after_s * 1000 + 1)
    period = rates.Period(records[0].time_ms, last + 1, "whole replay")
    with store.reading() as tx:
        return {
            "records": {"events": sum(1 for r in records if r.kind == "event"),
                        "tickets": sum(1 for r in records if r.kind == "ticket"),
                        "products": len(products), "devices": len(reader.devices),
                        "rejected": reader.rejected_count},
            "period": {"start_ms": period.start_ms, "end_ms": period.end_ms},
            "rates": {scope: [row.as_dict() for row in rates.query(tx, period, scope=scope)]
                      for scope in ("institution", "terminal")},
            "alerts": [alert.as_dict() for alert in alerts.list_alerts(tx, limit=1000)],
            "rejected": reader.rejected,
        }
