"""Device status as the gateway keeps it (the map itself: gateway/wire/status.py), the alerts it drives, and the
device list.

The status is advisory and unsigned (docs/protocol.md): it moves `max_seq` up (a
missing tail shows as missing seqs) and drives device_offline, backlog_high and
clock_unsynced, which resolve themselves when the condition clears.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gateway.domain import alerts
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.protocol import ProtocolError
from gateway.wire.status import ALARM_CLOCK, ALARM_JOURNAL_FULL, Status

__all__ = ["DeviceView", "record_status", "check_offline", "list_devices"]

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
        if tx.one("SELECT 1 FROM alerts WHERE type = 'device_offline' AND subject = ? AND state <> 'resolved'",
                  (device,)):
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
