"""A stored scan as the supervision rules see it: the event, where it was made, and its product."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.wire.protocol import Operation

__all__ = ["StoredScan", "SALES"]

SALES = (Operation.SALE, Operation.DISPENSE)
"""Operations that hand a pack to a patient: a pharmacy sale or a hospital dispense."""


@dataclass(frozen=True, kw_only=True)
class StoredScan:
    id: int
    """Row id in `events`: the evidence alerts point to."""
    device: str
    terminal: str
    institution: str
    institution_type: str
    region: str
    op: Operation
    code: str
    pid: str
    err: int
    ticket: str
    split_qty: int
    event_ms: int
    """Device time when its clock was synced, otherwise the time the gateway received it."""
    list_code: str = ""
    """From the catalog; empty when the product is unknown."""
    pack_size: int = 0
    """From the catalog; 0 when unknown (no split allowance can be judged)."""

    @property
    def is_sale(self) -> bool:
        return self.op in SALES and not self.err
