"""The dashboard's query parameters read into values: which institution, terminal, region, type and date range.

A parameter the API does not know, or a value it cannot use, is refused with a QueryError that names the
parameter, what it takes and what came (the API answers it with 400), so a client never gets a silently wider
answer than it asked for: the trial found `from` and `to` ignored without a word.

>>> filters_of({"institution": "P1", "institution_type": "pharmacy"})
Filters(institution='P1', terminal='', region='', institution_type='pharmacy')
>>> day_range({"from": "2026-11-01", "to": "2026-11-03"}, "Asia/Shanghai").label
'2026-11-01..2026-11-03'
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from gateway.domain import rates
from gateway.errors import GatewayError
from gateway.rules import Rules

__all__ = ["QueryError", "Filters", "FILTER_NAMES", "RANGE_NAMES", "MAX_RANGE_DAYS", "check_names", "filters_of",
           "day_range", "period_from", "whole_number"]

FILTER_NAMES = ("institution", "terminal", "region", "institution_type")
RANGE_NAMES = ("from", "to")
MAX_RANGE_DAYS = 366
"""The longest from..to range, in days (a year of hourly counters is what a query may sum)."""
_MAX_TEXT = 64
_INSTITUTION_TYPES = ("pharmacy", "hospital")


class QueryError(GatewayError, ValueError):
    """A query parameter that cannot be used: `malformed` (the API answers 400 with this text), or `invalid` for
    a value out of range (422)."""

    kind = "malformed"

    def __init__(self, message: str, *, kind: str = "malformed") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, kw_only=True)
class Filters:
    """What a table, chart or export is narrowed to; empty: no narrowing."""

    institution: str = ""
    """An institution code (定点医药机构编码), exactly."""
    terminal: str = ""
    """A terminal (收银台) name, exactly."""
    region: str = ""
    """An administrative region code of the institutions."""
    institution_type: str = ""
    """pharmacy or hospital."""


def check_names(query: Mapping[str, str], known: Iterable[str]) -> None:
    """Refuse a parameter that is not in `known`: a misspelt filter would otherwise widen the answer silently."""
    allowed = set(known)
    unknown = sorted(name for name in query if name not in allowed)
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0][:40]!r} (this endpoint takes: {', '.join(sorted(allowed))})")


def filters_of(query: Mapping[str, str]) -> Filters:
    """The filters in `query`, each checked: printable text of at most 64 characters, a known institution type."""
    values = {name: query.get(name, "") for name in FILTER_NAMES}
    for name, value in values.items():
        if len(value) > _MAX_TEXT or not value.isprintable() or value != value.strip():
            raise QueryError(f"{name} must be printable text of at most {_MAX_TEXT} characters without surrounding "
                             f"spaces, got {value[:40]!r}")
    if values["institution_type"] not in ("", *_INSTITUTION_TYPES):
        raise QueryError(f"institution_type must be pharmacy or hospital, got {values['institution_type'][:40]!r}")
    return Filters(**values)


def day_range(query: Mapping[str, str], timezone: str) -> rates.Period | None:
    """The calendar days `from`..`to` (both included, YYYY-MM-DD in `timezone`), or None when neither is given."""
    given = [name for name in RANGE_NAMES if name in query]
    if not given:
        return None
    if len(given) == 1:
        raise QueryError(f"from and to go together (both YYYY-MM-DD, both days included); only {given[0]} came")
    first, last = _day(query, "from"), _day(query, "to")
    if first > last:
        raise QueryError(f"from ({first}) must not be after to ({last})")
    days = (last - first).days + 1
    if days > MAX_RANGE_DAYS:
        raise QueryError(f"from..to spans {days} days; at most {MAX_RANGE_DAYS}")
    start, end = rates.day_period(first, timezone), rates.day_period(last, timezone)
    return rates.Period(start.start_ms, end.end_ms, f"{first}..{last}")


def _day(query: Mapping[str, str], name: str) -> date:
    text = query[name]
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None or not 2000 <= day.year <= 2099:
        raise QueryError(f"{name} must be a day YYYY-MM-DD from 2000 to 2099, got {text[:40]!r}")
    return day


def period_from(query: Mapping[str, str], rules: Rules) -> rates.Period:
    """The period a rates query asks for: from=YYYY-MM-DD&to=YYYY-MM-DD (days included), day=YYYY-MM-DD,
    window_h=N, period=window (the configured rolling window), or today in the configured zone."""
    given = [name for name in ("from", "to", "day", "window_h", "period") if name in query]
    if {"from", "to"} & set(given) and len(given) > len({"from", "to"} & set(given)):
        raise QueryError(f"from..to is a period of its own: leave out {given[-1]}")
    chosen = day_range(query, rules.timezone)
    if chosen is not None:
        return chosen
    if "window_h" in query or query.get("period") == "window":
        hours = whole_number(query.get("window_h", str(rules.rolling_window_h)), "window_h", 1, 24 * 366,
                             kind="invalid")
        return rates.window_period(time.time_ns() // 1_000_000, hours)
    if "day" in query:
        try:
            day = date.fromisoformat(query["day"])
            if not 2000 <= day.year <= 2099:
                raise ValueError
        except ValueError:
            raise QueryError(f"day must be YYYY-MM-DD from 2000 to 2099, got {query['day'][:40]!r}",
                             kind="invalid") from None
    else:
        day = datetime.now(ZoneInfo(rules.timezone)).date()
    return rates.day_period(day, rules.timezone)


def whole_number(text: str, name: str, least: int, most: int, *, kind: str = "malformed") -> int:
    """A whole number from least to most, or a QueryError naming the parameter, the range and what came."""
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if number is None or not least <= number <= most:
        raise QueryError(f"{name} must be a whole number {least}-{most}, got {text[:40]!r}", kind=kind)
    return number
