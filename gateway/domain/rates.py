"""Supervision rates per terminal and per institution, kept incrementally in hourly counters.

Every stored event, ticket and match adds to one row of `rate_hours` (institution,
terminal, hour) inside the transaction that made it; a query sums at most the hours
of its period, never the history. Days follow the configured time zone; the
rolling window is whole hours ending with the current one.

The formulas are ours (docs/platform.md: none is published), as docs/operations.md, "Rates", states them:

- coverage (扫码核查率) = units_covered / units_required. A unit is one code-bearing item sold: each
  whole pack of a ticket line whose product requires a code, and each split (拆零) line, which the
  code of its opened pack covers.
- valid_scan_rate = valid_scans / scans.
- duplicate_rate (药品销售重复率) = duplicate_sales / sale_scans (valid sale and dispense scans), split-pack
  aware (ledger.py).
- consistency_error_rate (单据一致性错误率) = mismatched_scans / matched_scans: scans tied to a
  ticket whose product is on none of its lines, over scans tied to a ticket whose product is known.
- swap_rate (销售药品串换率) = swapped_scans / matched_scans: of the sale scans settled on a ticket (the same
  denominator as the consistency rate), those whose code cannot be the pack the ticket bills: a code of a
  product the ticket does not bill (串换 to another product), or a code already sold (a resold or reused box
  scanned to settle something else, the pattern of the published cases). Each scan counts once, when it is tied to
  its ticket, whichever of the two it is. It differs from the consistency rate, which counts only the first kind,
  and from the duplicate rate, which counts duplicates among all sale scans, settled on a ticket or not.
- upload_rate (上传率) = uploaded / stored: events the platform accepted over valid events stored (the ones
  that must go up; invalid scans are not trace codes and are not uploaded).
- missing_seqs: per device, seqs known to exist (highest seq seen in events or status) but not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.domain import devices
from gateway.errors import GatewayError
from gateway.store.base import Tx

__all__ = ["RateQueryError", "COUNTERS", "Period", "RateRow", "HourDeltas", "bump", "query", "series", "day_period",
           "window_period", "hour_of"]

COUNTERS = ("scans", "valid_scans", "sale_scans", "duplicate_sales", "matched_scans", "mismatched_scans",
            "units_required", "units_covered", "stored", "uploaded", "swapped_scans")
_HOUR_MS = 3_600_000


def hour_of(at_ms: int) -> int:
    return at_ms // _HOUR_MS


class HourDeltas:
    """Deltas summed per hour row over one transaction and written once per row (`write`): a batch of 500
    events touches a few rows, so it writes a few rows, not 500."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, int], dict[str, int]] = {}

    def add(self, institution: str, terminal: str, at_ms: int, **deltas: int) -> None:
        """Add `deltas` (names from COUNTERS) to the hour holding `at_ms`."""
        row = self._rows.setdefault((institution, terminal, hour_of(at_ms)), {})
        for name, value in deltas.items():
            if name not in COUNTERS:
                raise ValueError(f"unknown rate counter {name!r}")
            if value:
                row[name] = row.get(name, 0) + value

    def write(self, tx: Tx) -> None:
        """Add what was summed to `rate_hours`, in key order, and start again from nothing."""
        for (institution, terminal, hour), deltas in sorted(self._rows.items()):
            names = [name for name, value in deltas.items() if value]
            if not names:
                continue
            columns = ", ".join(names)
            updates = ", ".join(f"{name} = rate_hours.{name} + excluded.{name}" for name in names)
            tx.write(
                f"INSERT INTO rate_hours (institution, terminal, hour, {columns}) VALUES (?, ?, ?"
                f"{', ?' * len(names)}) ON CONFLICT (institution, terminal, hour) DO UPDATE SET {updates}",
                (institution, terminal, hour, *(deltas[name] for name in names)),
            )
        self._rows.clear()


def bump(tx: Tx, institution: str, terminal: str, at_ms: int, **deltas: int) -> None:
    """Add `deltas` (names from COUNTERS) to the hour holding `at_ms` now."""
    hour_deltas = HourDeltas()
    hour_deltas.add(institution, terminal, at_ms, **deltas)
    hour_deltas.write(tx)


class RateQueryError(GatewayError, ValueError):
    """A query of the rates that asks for something they do not hold (a scope or a step); kind invalid."""

    kind = "invalid"

@dataclass(frozen=True)
class Period:
    """Half-open [start_ms, end_ms), aligned to hours."""

    start_ms: int
    end_ms: int
    label: str


def day_period(day: date, timezone: str) -> Period:
    zone = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    return Period(int(start.timestamp() * 1000), int(end.timestamp() * 1000), day.isoformat())


def window_period(now_ms: int, hours: int) -> Period:
    end = (hour_of(now_ms) + 1) * _HOUR_MS
    return Period(end - hours * _HOUR_MS, end, f"last {hours} h")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


@dataclass(frozen=True)
class RateRow:
    """The rates of one terminal or institution over one period; a rate is None when nothing was there to count."""

    scope: str
    institution: str
    terminal: str
    period: str
    counts: dict[str, int] = field(default_factory=dict)
    missing_seqs: int = 0

    @property
    def coverage(self) -> float | None:
        return _ratio(self.counts["units_covered"], self.counts["units_required"])

    @property
    def valid_scan_rate(self) -> float | None:
        return _ratio(self.counts["valid_scans"], self.counts["scans"])

    @property
    def duplicate_rate(self) -> float | None:
        return _ratio(self.counts["duplicate_sales"], self.counts["sale_scans"])

    @property
    def consistency_error_rate(self) -> float | None:
        return _ratio(self.counts["mismatched_scans"], self.counts["matched_scans"])

    @property
    def swap_rate(self) -> float | None:
        return _ratio(self.counts["swapped_scans"], self.counts["matched_scans"])

    @property
    def upload_rate(self) -> float | None:
        return _ratio(self.counts["uploaded"], self.counts["stored"])

    def as_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope, "institution": self.institution, "terminal": self.terminal, "period": self.period,
            "coverage": self.coverage, "valid_scan_rate": self.valid_scan_rate, "duplicate_rate": self.duplicate_rate,
            "consistency_error_rate": self.consistency_error_rate, "swap_rate": self.swap_rate,
            "upload_rate": self.upload_rate,
            "missing_seqs": self.missing_seqs, **self.counts,
        }


def query(tx: Tx, period: Period, *, scope: str = "terminal", institution: str = "", terminal: str = "",
          region: str = "", institution_type: str = "") -> list[RateRow]:
    """Rates per terminal (scope "terminal") or per institution over `period`, optionally filtered."""
    if scope not in ("terminal", "institution"):
        raise RateQueryError(f"scope must be terminal or institution, got {scope[:40]!r}")
    group = "r.institution, r.terminal" if scope == "terminal" else "r.institution"
    where, parameters = _hours_of(period, "r.", institution, terminal)
    for column, value in (("region", region), ("institution_type", institution_type)):
        if value:
            where.append(f"r.institution IN ({devices.institutions_where(column)})")
            parameters.append(value)
    sums = ", ".join(f"sum(r.{name})" for name in COUNTERS)
    rows = tx.all(f"SELECT {group}, {sums} FROM rate_hours r WHERE {' AND '.join(where)} GROUP BY {group} "
                  f"ORDER BY {group}", parameters)
    missing = _missing(tx, scope)
    result = []
    for row in rows:
        key_width = 2 if scope == "terminal" else 1
        inst = row[0]
        term = row[1] if scope == "terminal" else ""
        counts = {name: int(value or 0) for name, value in zip(COUNTERS, row[key_width:], strict=True)}
        result.append(RateRow(scope, inst, term, period.label, counts, missing.get((inst, term), 0)))
    return result


def _hours_of(period: Period, alias: str, institution: str, terminal: str) -> tuple[list[str], list[object]]:
    """WHERE conditions and parameters for the rate_hours rows (columns prefixed by `alias`) of `period`, of one
    institution or terminal when given."""
    where = [f"{alias}hour >= ?", f"{alias}hour < ?"]
    parameters: list[object] = [hour_of(period.start_ms), hour_of(period.end_ms + _HOUR_MS - 1)]
    for column, value in (("institution", institution), ("terminal", terminal)):
        if value:
            where.append(f"{alias}{column} = ?")
            parameters.append(value)
    return where, parameters


def _missing(tx: Tx, scope: str) -> dict[tuple[str, str], int]:
    """Seqs a device is known to have written but the store lacks, summed per terminal or institution."""
    missing: dict[tuple[str, str], int] = {}
    for (inst, term), count in devices.missing_seqs(tx).items():
        key = (inst, term if scope == "terminal" else "")
        missing[key] = missing.get(key, 0) + count
    return missing


def series(tx: Tx, period: Period, *, step: str, timezone: str, institution: str = "",
           terminal: str = "") -> list[dict[str, object]]:
    """Coverage and scan volume per hour or per calendar day of `timezone` over `period`, oldest first."""
    if step not in ("hour", "day"):
        raise RateQueryError(f"step must be hour or day, got {step[:40]!r}")
    where, parameters = _hours_of(period, "", institution, terminal)
    rows = tx.all(f"SELECT hour, sum(scans), sum(valid_scans), sum(units_required), sum(units_covered) "
                  f"FROM rate_hours WHERE {' AND '.join(where)} GROUP BY hour ORDER BY hour", parameters)
    zone = ZoneInfo(timezone)

    def bucket_of(start_ms: int) -> int:
        if step == "hour":
            return start_ms
        local = datetime.fromtimestamp(start_ms / 1000, zone)
        return int(datetime(local.year, local.month, local.day, tzinfo=zone).timestamp() * 1000)

    buckets: dict[int, list[int]] = {}
    for hour in range(hour_of(period.start_ms), hour_of(period.end_ms + _HOUR_MS - 1)):
        buckets.setdefault(bucket_of(hour * _HOUR_MS), [0, 0, 0, 0])  # empty hours and days show as such
    for hour, scans, valid, required, covered in rows:
        bucket = buckets[bucket_of(hour * _HOUR_MS)]
        for index, value in enumerate((scans, valid, required, covered)):
            bucket[index] += int(value or 0)
    return [{"start_ms": start_ms, "scans": scans, "valid_scans": valid, "units_required": required,
             "units_covered": covered, "coverage": _ratio(covered, required)}
            for start_ms, (scans, valid, required, covered) in sorted(buckets.items())]
