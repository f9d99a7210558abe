"""Device status as the gateway keeps it (the map itself: gateway/wire/status.py), the alerts it drives, and the
device list; the owner of the `devices` and `device_state` tables (where a device stands, its acknowledged seq
and counts).

The status is advisory and unsigned (docs/protocol.md): it moves `max_seq` up (a
missing tail shows as missing seqs) and drives device_offline, backlog_high and
clock_unsynced, which resolve themselves when the condition clears.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from gateway.domain import alerts
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.protocol import ProtocolError
from gateway.wire.status import ALARM_CLOCK, ALARM_JOURNAL_FULL, Status

__all__ = ["DeviceView", "Place", "record_status", "check_offline", "list_devices",
           "places_of", "ack_positions", "advance_ack", "count_duplicate", "add_stored",
           "is_registered", "institution_of_terminal", "terminals", "DeviceState", "states", "missing_seqs",
           "institutions_where"]


def record_status(tx: Tx, status: Status, rules: Rules, *, now_ms: int) -> None:
    """Keep the device's latest status and update its alerts. ProtocolError when the device is not registered,
    or when its last seq lies beyond the seq window (it would turn into that many missing seqs)."""
    place = tx.one("SELECT institution, terminal FROM devices WHERE device = ?", (status.device,))
    if place is None:
        raise ProtocolError("unknown_device", "status of an unregistered device")
    institution, terminal = place
    previous = tx.one("SELECT online, offline_since_ms, acked_seq FROM device_state WHERE device = ?",
                      (status.device,))
    acked = int(previous[2]) if previous else 0
    if status.last_seq > acked + rules.seq_window:
        raise ProtocolError("seq_out_of_window", f"status says last seq {status.last_seq}, the acknowledged one is "
                            f"{acked} and the window is {rules.seq_window}")
    was_online = bool(previous and previous[0])
    offline_since = 0 if status.online else (now_ms if was_online or not previous or not previous[1] else previous[1])
    if status.online:
        tx.write("UPDATE device_state SET online = 1, status_ms = ?, offline_since_ms = 0, firmware = ?, "
                   "uptime_s = ?, backlog = ?, free_heap = ?, clock = ?, last_seq = ?, boot = ?, alarms = ?, mode = ?, "
                   "journal_used = ?, journal_capacity = ?, "
                   "max_seq = CASE WHEN max_seq > ? THEN max_seq ELSE ? END WHERE device = ?",
                   (now_ms, status.firmware, status.uptime_s, status.backlog, status.free_heap, status.clock,
                    status.last_seq, status.boot, status.alarms, status.mode, status.journal_used,
                    status.journal_capacity, status.last_seq, status.last_seq, status.device))
        alerts.auto_resolve(tx, "device_offline", status.device, now_ms, "back online")
    else:
        tx.write("UPDATE device_state SET online = 0, status_ms = ?, offline_since_ms = ? WHERE device = ?",
                   (now_ms, offline_since, status.device))
        return
    if status.backlog > rules.backlog_alert or status.alarms & ALARM_JOURNAL_FULL:
        full = " and its journal is full" if status.alarms & ALARM_JOURNAL_FULL else ""
        alerts.raise_alert(tx, "backlog_high", subject=status.device, now_ms=now_ms, institution=institution,
                           terminal=terminal, device=status.device,
                           detail=f"{status.backlog} events not acknowledged{full}")
    else:
        alerts.auto_resolve(tx, "backlog_high", status.device, now_ms, "backlog drained")
    if status.clock == 0 or status.alarms & ALARM_CLOCK:
        alerts.raise_alert(tx, "clock_unsynced", subject=status.device, now_ms=now_ms, institution=institution,
                           terminal=terminal, device=status.device,
                           detail="device clock never synced: event times fall back to the gateway's")
    else:
        alerts.auto_resolve(tx, "clock_unsynced", status.device, now_ms, "clock synced")


def check_offline(tx: Tx, rules: Rules, *, now_ms: int) -> None:
    """Raise device_offline for devices offline, or silent while online, longer than offline_after_s."""
    since = now_ms - rules.offline_after_s * 1000
    rows = tx.all("SELECT s.device, d.institution, d.terminal, s.online, s.offline_since_ms, s.status_ms "
                  "FROM device_state s JOIN devices d ON d.device = s.device WHERE s.status_ms > 0 AND "
                  "((s.online = 0 AND s.offline_since_ms <= ?) OR (s.online = 1 AND s.status_ms <= ?))",
                  (since, since))
    for device, institution, terminal, online, offline_since, status_ms in rows:
        if alerts.is_live(tx, "device_offline", device):
            continue
        silent_s = (now_ms - (status_ms if online else offline_since)) // 1000
        how = "no status" if online else "offline (Last Will)"
        alerts.raise_alert(tx, "device_offline", subject=device, now_ms=now_ms, institution=institution,
                           terminal=terminal, device=device, detail=f"{how} for {silent_s} s")


@dataclass(frozen=True)
class DeviceView:
    device: str
    terminal: str
    institution: str
    institution_type: str
    region: str
    online: bool
    status_ms: int
    """When the last status arrived (0: never)."""
    last_event_ms: int
    firmware: str
    backlog: int
    clock: int
    alarms: int
    free_heap: int
    acked_seq: int
    """Every seq up to this one is stored."""
    max_seq: int
    """Highest seq known to exist (events or status)."""
    stored: int
    missing_seqs: int
    duplicates: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def list_devices(tx: Tx, *, institution: str = "") -> list[DeviceView]:
    clause, parameters = ("WHERE d.institution = ?", (institution,)) if institution else ("", ())
    rows = tx.all(
        "SELECT d.device, d.terminal, d.institution, d.institution_type, d.region, s.online, s.status_ms, "
        "s.last_event_ms, s.firmware, s.backlog, s.clock, s.alarms, s.free_heap, s.acked_seq, s.max_seq, s.stored, "
        f"s.max_seq - s.stored, s.duplicates FROM devices d JOIN device_state s ON s.device = d.device {clause} "
        "ORDER BY d.institution, d.terminal, d.device", parameters)
    return [DeviceView(row[0], row[1], row[2], row[3], row[4], bool(row[5]), *row[6:]) for row in rows]


# where devices stand and how far they are acknowledged (for the judging of a batch) ------------------------------

@dataclass(frozen=True)
class Place:
    """Where a device's scans are made; blanks for a device not registered."""

    terminal: str = ""
    institution: str = ""
    institution_type: str = ""
    region: str = ""


def places_of(tx: Tx, names: Iterable[str]) -> dict[str, Place]:
    """Device -> its place, for the registered ones of `names`; one query per 500."""
    listed = sorted(set(names))
    found: dict[str, Place] = {}
    for start in range(0, len(listed), 500):
        part = listed[start:start + 500]
        for device, terminal, institution, institution_type, region in tx.all(
                "SELECT device, terminal, institution, institution_type, region "
                f"FROM devices WHERE device IN ({','.join('?' * len(part))})", part):
            found[device] = Place(terminal, institution, institution_type, region)
    return found


def ack_positions(tx: Tx, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Device -> (acknowledged seq, highest seq stored or announced), for those of `names` with a state row;
    one query per 400."""
    listed = sorted(set(names))
    found: dict[str, tuple[int, int]] = {}
    for start in range(0, len(listed), 400):
        part = listed[start:start + 400]
        for device, acked, max_seq in tx.all("SELECT device, acked_seq, max_seq FROM device_state "
                                             f"WHERE device IN ({','.join('?' * len(part))})", part):
            found[device] = (int(acked), int(max_seq))
    return found


def advance_ack(tx: Tx, device: str, acked_seq: int) -> None:
    """Move the device's acknowledged seq up to `acked_seq` (never down)."""
    tx.write("UPDATE device_state SET acked_seq = ? WHERE device = ? AND acked_seq < ?", (acked_seq, device, acked_seq))


def count_duplicate(tx: Tx, device: str) -> None:
    """A retransmission of an event stored already."""
    tx.write("UPDATE device_state SET duplicates = duplicates + 1 WHERE device = ?", (device,))


def add_stored(tx: Tx, device: str, *, stored: int, max_seq: int, last_event_ms: int) -> None:
    """Add a batch's newly stored events of a device: their number, the highest seq, the last receipt."""
    tx.write("INSERT INTO device_state (device, max_seq, stored, last_event_ms) VALUES (?, ?, ?, ?) "
             "ON CONFLICT (device) DO UPDATE SET stored = device_state.stored + excluded.stored, "
             "max_seq = CASE WHEN device_state.max_seq > excluded.max_seq THEN device_state.max_seq "
             "ELSE excluded.max_seq END, last_event_ms = excluded.last_event_ms",
             (device, max_seq, stored, last_event_ms))


def is_registered(tx: Tx, device: str) -> bool:
    return tx.one("SELECT 1 FROM devices WHERE device = ?", (device,)) is not None


def institution_of_terminal(tx: Tx, terminal: str) -> str | None:
    """The institution of a registered device serving `terminal`; None when none does."""
    row = tx.one("SELECT institution FROM devices WHERE terminal = ? LIMIT 1", (terminal,))
    return row[0] if row else None


def terminals(tx: Tx) -> list[tuple[str, str, str, str]]:
    """(institution, institution type, region, terminal) of every registered device, by institution and terminal."""
    return [(row[0], row[1], row[2], row[3]) for row in tx.all(
        "SELECT institution, institution_type, region, terminal FROM devices ORDER BY institution, terminal")]


@dataclass(frozen=True)
class DeviceState:
    """What the metrics show of one registered device."""

    online: bool
    seen: bool
    """A status has been received."""
    backlog: int
    missing_seqs: int
    """Seqs the device wrote (its status or its events say) that the store lacks."""


def states(tx: Tx) -> list[DeviceState]:
    return [DeviceState(bool(row[0]), bool(row[1]), int(row[2]), int(row[3])) for row in tx.all(
        "SELECT online, status_ms > 0, backlog, max_seq - stored FROM device_state")]


def missing_seqs(tx: Tx) -> dict[tuple[str, str], int]:
    """(institution, terminal) -> seqs its devices are known to have written that the store lacks."""
    return {(row[0], row[1]): int(row[2] or 0) for row in tx.all(
        "SELECT d.institution, d.terminal, sum(s.max_seq - s.stored) FROM devices d "
        "JOIN device_state s ON s.device = d.device GROUP BY d.institution, d.terminal")}


def institutions_where(column: str) -> str:
    """SQL for the institutions of the devices whose `column` (region or institution_type) equals a parameter,
    for another owner's query to filter by (`institution IN (...)`)."""
    if column not in ("region", "institution_type"):
        raise ValueError(f"no device filter on {column!r}")
    return f"SELECT institution FROM devices WHERE {column} = ?"
