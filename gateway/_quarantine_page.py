"""One page of the quarantine listing: newest first, at most `limit` rows and about `byte_cap` bytes of JSON.

Rows are read in two steps so that a page never holds more than it answers: their small fields and message
lengths first (`limit` + 1 rows, to know whether more follow), then the message bytes of the rows that fit.
A message longer than `hex_cap` bytes shows only its first `hex_cap` (`message_truncated`; `message_bytes` is
always its full length), so one huge message cannot fill a page alone.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.store import Tx

__all__ = ["page", "MAX_LIMIT", "BYTE_CAP"]

MAX_LIMIT = 100
BYTE_CAP = 1024 * 1024
"""The JSON of one page stays below this (rows stop before it would pass)."""
HEX_CAP = 64 * 1024
"""Bytes of one message shown; the largest ticket the gateway takes fits whole."""
_FIELDS = ("id", "received_ms", "last_ms", "times", "topic", "device", "reason", "detail")


def page(tx: Tx, *, before: int | None, limit: int, byte_cap: int = BYTE_CAP, hex_cap: int = HEX_CAP
         ) -> dict[str, Any]:
    """`{"reasons", "messages", "next_before", "truncated"}`: rows with ids below `before` (all when None).

    `next_before` is the `before` of the next page, None when this page reached the end; `truncated` tells that
    the byte cap, not `limit`, ended the page.
    """
    where, parameters = ("WHERE id < ?", [before]) if before is not None else ("", [])
    heads = tx.all(f"SELECT {', '.join(_FIELDS)}, length(message) FROM quarantine {where} "
                   "ORDER BY id DESC LIMIT ?", (*parameters, limit + 1))
    reasons = tx.all("SELECT reason, count(*), sum(times) FROM quarantine GROUP BY reason ORDER BY reason")
    summary = {reason: {"messages": count, "times": times} for reason, count, times in reasons}
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
            row["message_hex"] = bytes(messages.get(row["id"], b"")).hex()
    more = truncated or len(heads) > limit
    return {"reasons": summary, "messages": rows, "next_before": rows[-1]["id"] if more and rows else None,
            "truncated": truncated}
