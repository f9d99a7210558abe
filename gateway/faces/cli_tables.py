"""Plain-text tables for the CLI: what an operator reads in a terminal or pastes into a report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.domain.alerts import Alert
from gateway.domain.control import Command
from gateway.domain.devices import DeviceView
from gateway.domain.rates import RateRow
from gateway.domain.users import LEGACY_NAMES, User

__all__ = ["table", "local_time", "rates_table", "alerts_table", "devices_table", "users_table", "commands_table"]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell (CJK characters count double)."""
    cells = [[str(item) for item in header]] + [[_printable(item) for item in row] for row in rows]
    width = [max(_width(row[column]) for row in cells) for column in range(len(header))]
    lines = ["  ".join(cell + " " * (width[i] - _width(cell)) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)


def _printable(item: object) -> str:
    """GS1's separator (0x1D) shown as <GS>, other control characters as spaces."""
    text = str(item).replace("\x1d", "<GS>")
    return "".join(" " if ord(char) < 32 else char for char in text)


def _width(text: str) -> int:
    return sum(2 if "\u2e80" <= char <= "\uffef" else 1 for char in text)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def local_time(ms: int, zone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S") if ms else "never"


def rates_table(rows: Sequence[RateRow]) -> str:
    header = ["institution", "terminal", "coverage", "valid", "duplicate", "consistency err", "swap", "upload",
              "scans", "units req", "missing seqs"]
    return table(header, [[row.institution, row.terminal or "*", _percent(row.coverage), _percent(row.valid_scan_rate),
                           _percent(row.duplicate_rate), _percent(row.consistency_error_rate),
                           _percent(row.swap_rate), _percent(row.upload_rate), row.counts["scans"],
                           row.counts["units_required"], row.missing_seqs] for row in rows])


def alerts_table(found: Sequence[Alert], zone: str) -> str:
    header = ["id", "type", "severity", "state", "institution", "terminal", "count", "last", "events", "detail"]
    return table(header, [[alert.id, alert.type, alert.severity, alert.state, alert.institution, alert.terminal,
                           alert.count, local_time(alert.last_ms, zone), ",".join(map(str, alert.events[-5:])),
                           alert.detail[:80]] for alert in found])


def devices_table(found: Sequence[DeviceView], zone: str) -> str:
    header = ["device", "terminal", "institution", "online", "last status", "firmware", "backlog", "clock",
              "acked seq", "max seq", "missing"]
    return table(header, [[device.device, device.terminal, device.institution,
                           "yes" if device.online else ("no" if device.status_ms else "never"),
                           local_time(device.status_ms, zone), device.firmware or "-", device.backlog,
                           ("unsynced", "ntp", "gateway")[device.clock] if 0 <= device.clock <= 2 else device.clock,
                           device.acked_seq, device.max_seq, device.missing_seqs] for device in found])


def users_table(found: Sequence[User], zone: str) -> str:
    """The users, and the legacy shared tokens not revoked (they work while their token is configured)."""
    rows: list[list[object]] = [[user.name, user.role, local_time(user.created_ms, zone),
                                 local_time(user.revoked_ms, zone) if user.revoked_ms else "-"] for user in found]
    named = {user.name for user in found}
    rows += [[name, f"{role} (legacy shared token)", "-", "-"] for name, role in LEGACY_NAMES.items()
             if name not in named]
    return table(["name", "role", "added", "revoked"], rows)


def commands_table(found: Sequence[Command], zone: str) -> str:
    header = ["id", "issued", "by", "device", "command", "argument", "state", "result", "answer"]
    return table(header, [[command.id, local_time(command.issued_ms, zone), command.issued_by, command.device,
                           command.kind, "-" if command.argument is None else json.dumps(command.argument),
                           command.state, command.result or "-",
                           "-" if command.answer is None else json.dumps(command.answer)[:80]] for command in found])
