"""The quarantine: every message the gateway refused, kept once with its reason, bounded by rows and bytes.

A device that resends the same bytes only raises their count. When the table passes its row or byte bound the
oldest rows go first, down to 90 % of the bound (so trimming is not paid on every batch), and what they held is
added to `quarantine_dropped`, so the counts per reason stay whole though the bytes are gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.domain import alerts
from gateway.rules import Rules
from gateway.store.base import Tx

__all__ = ["Rejected", "Bounds", "ReasonCounts", "keep", "trim", "counts", "page", "mac_failures", "MAX_LIMIT",
           "BYTE_CAP"]


@dataclass(frozen=True)
class Rejected:
    """A message the gateway will not accept."""

    topic: str
    device: str
    """The device its topic names ("" for POS tickets and foreign topics)."""
    reason: str
    """The counted category (bad_mac, schema, seq_out_of_window, undecodable, commit_failed, ...)."""
    detail: str
    message: bytes
    received_ms: int


@dataclass(frozen=True, kw_only=True)
class Bounds:
    rows: int = 100_000
    bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class ReasonCounts:
    """What the quarantine holds and held for one reason."""

    messages: int
    """Distinct messages held."""
    times: int
    """How often they came."""
    bytes: int
    """Their size, held."""
    dropped_messages: int
    """Distinct messages dropped to keep the bounds (their counts kept)."""
    dropped_times: int


def counts(tx: Tx) -> dict[str, ReasonCounts]:
    """Reason -> what is held and what was dropped."""
    held = {reason: (int(messages), int(times), int(size)) for reason, messages, times, size in tx.all(
        "SELECT reason, count(*), sum(times), coalesce(sum(length(message)), 0) FROM quarantine GROUP BY reason")}
    dropped = {reason: (int(messages), int(times))
               for reason, messages, times in tx.all("SELECT reason, messages, times FROM quarantine_dropped")}
    return {reason: ReasonCounts(*held.get(reason, (0, 0, 0)), *dropped.get(reason, (0, 0)))
            for reason in sorted(held | dropped)}


_ROW_BYTES = "length(message) + length(topic) + length(device) + length(detail) + 100"
"""What a row takes, as the bounds count it: its text and bytes, and about 100 for the rest and the indexes."""
_TOPIC_KEPT = 200
_DEVICE_KEPT = 64
_DETAIL_KEPT = 500


def keep(tx: Tx, refusal: Rejected) -> None:
    """Keep the bytes once per topic; the same bytes again only raise the count. The topic, the device its topic
    names and the detail are kept cut short (a topic can be 64 KiB), so the bounds count nearly all a row holds."""
    digest = hashlib.sha256(refusal.topic.encode() + b"\0" + refusal.message).digest()
    tx.write(
        "INSERT INTO quarantine (received_ms, topic, device, reason, detail, message, digest, last_ms) "
        "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (digest) DO UPDATE SET times = quarantine.times + 1, "
        "last_ms = excluded.last_ms",
        (refusal.received_ms, refusal.topic[:_TOPIC_KEPT], refusal.device[:_DEVICE_KEPT], refusal.reason[:40],
         refusal.detail[:_DETAIL_KEPT], refusal.message, digest, refusal.received_ms))


def trim(tx: Tx, bounds: Bounds) -> int:
    """Drop the oldest rows while the table is over a bound, down to 90 % of it; the rows dropped."""
    rows, size = tx.one(f"SELECT count(*), coalesce(sum({_ROW_BYTES}), 0) FROM quarantine") or (0, 0)
    if rows <= bounds.rows and size <= bounds.bytes:
        return 0
    excess_rows, excess_bytes = rows - bounds.rows * 9 // 10, size - bounds.bytes * 9 // 10
    last_id, dropped, freed = 0, 0, 0
    dropped_by_reason: dict[str, list[int]] = {}
    while dropped < excess_rows or freed < excess_bytes:
        oldest = tx.all(f"SELECT id, reason, times, {_ROW_BYTES} FROM quarantine WHERE id > ? ORDER BY id LIMIT 500",
                        (last_id,))
        if not oldest:
            break
        for row_id, reason, times, length in oldest:
            if dropped >= excess_rows and freed >= excess_bytes:
                break
            last_id, dropped, freed = int(row_id), dropped + 1, freed + int(length)
            counts = dropped_by_reason.setdefault(reason, [0, 0, 0])
            counts[0] += 1
            counts[1] += int(times)
            counts[2] += int(length)
    tx.write("DELETE FROM quarantine WHERE id <= ?", (last_id,))
    for reason, (messages, times, length) in sorted(dropped_by_reason.items()):
        tx.write("INSERT INTO quarantine_dropped (reason, messages, times, bytes) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (reason) DO UPDATE SET messages = quarantine_dropped.messages + excluded.messages, "
                 "times = quarantine_dropped.times + excluded.times, bytes = quarantine_dropped.bytes + excluded.bytes",
                 (reason, messages, times, length))
    return dropped


MAX_LIMIT = 100
BYTE_CAP = 1024 * 1024
"""The JSON of one page stays below this (rows stop before it would pass)."""
HEX_CAP = 64 * 1024
"""Bytes of one message shown; the largest ticket the gateway takes fits whole."""
_FIELDS = ("id", "received_ms", "last_ms", "times", "topic", "device", "reason", "detail")


def page(tx: Tx, *, before: int | None, limit: int, byte_cap: int = BYTE_CAP, hex_cap: int = HEX_CAP
         ) -> dict[str, Any]:
    """`{"reasons", "messages", "next_before", "truncated"}`: rows with ids below `before` (all when None),
    newest first, at most `limit` and about `byte_cap` bytes of JSON; `reasons` counts held and dropped ones.

    Rows are read in two steps so that a page never holds more than it answers: their small fields and message
    lengths first (`limit` + 1 rows, to know whether more follow), then the message bytes of the rows that fit.
    A message longer than `hex_cap` bytes shows only its first `hex_cap` (`message_truncated`; `message_bytes` is
    always its full length), so one huge message cannot fill a page alone.

    `next_before` is the `before` of the next page, None when this page reached the end; `truncated` tells that
    the byte cap, not `limit`, ended the page.
    """
    where, parameters = ("WHERE id < ?", [before]) if before is not None else ("", [])
    heads = tx.all(f"SELECT {', '.join(_FIELDS)}, length(message) FROM quarantine {where} "
                   "ORDER BY id DESC LIMIT ?", (*parameters, limit + 1))
    summary = {reason: dataclasses.asdict(held) for reason, held in counts(tx).items()}
    size = len(json.dumps({"reasons": summary, "messages": [], "next_before": 2**63, "truncated": False}))
    rows: list[dict[str, Any]] = []
    truncated = False
    for head in heads[:limit]:
        row = dict(zip(_FIELDS, head[:-1], strict=True))
        length = int(head[-1])
        row.update(message_bytes=length, message_truncated=length > hex_cap)
        row_size = len(json.dumps(row, ensure_ascii=False).encode()) + len(', "message_hex": ""') + 2 * min(
            length, hex_cap) + 2
        if rows and size + row_size > byte_cap:
            truncated = True
            break
        size += row_size
        rows.append(row)
    if rows:
        ids = [row["id"] for row in rows]
        messages = dict(tx.all(f"SELECT id, substr(message, 1, ?) FROM quarantine WHERE id IN "
                               f"({', '.join('?' * len(ids))})", (hex_cap, *ids)))
        for row in rows:
            row["message_hex"] = bytes(messages.get(row["id"]) or b"").hex()  # SQLite: substr of an empty blob is NULL
    more = truncated or len(heads) > limit
    return {"reasons": summary, "messages": rows, "next_before": rows[-1]["id"] if more and rows else None,
            "truncated": truncated}


def mac_failures(tx: Tx, rules: Rules, refusal: Rejected, *, institution: str, terminal: str) -> None:
    """Raise mac_failures when the device's bad-MAC messages within the window reach the burst."""
    since = refusal.received_ms - rules.mac_failure_window_s * 1000
    row = tx.one("SELECT sum(times) FROM quarantine WHERE device = ? AND reason = 'bad_mac' AND last_ms >= ?",
                 (refusal.device, since))
    failures = int(row[0] or 0) if row else 0
    if failures >= rules.mac_failure_burst:
        alerts.raise_alert(tx, "mac_failures", subject=refusal.device, now_ms=refusal.received_ms,
                           institution=institution, terminal=terminal, device=refusal.device,
                           detail=f"{failures} messages with a bad MAC in {rules.mac_failure_window_s} s "
                           "(wrong key, or someone else publishing as this device)")
