"""Names of the store locks several modules take (`Tx.lock`), kept apart so taking one imports no planner."""

from __future__ import annotations

__all__ = ["PLAN_LOCK"]

PLAN_LOCK = "outbox:plan"
"""The lock planning holds, and an ingest batch with tickets too (see the module's text)."""
