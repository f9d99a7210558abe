"""The name of the outbox planner's store lock (`Tx.lock`), apart from the planner: withdrawals takes it without
importing the outbox, which imports withdrawals."""

from __future__ import annotations

__all__ = ["PLAN_LOCK"]

PLAN_LOCK = "outbox:plan"
"""The lock planning holds, and an ingest batch with tickets too (see the module's text)."""
