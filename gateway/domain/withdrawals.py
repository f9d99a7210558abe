"""Withdrawals an operator asks for (3507): a row the platform accepted that should not be there (a sale that
was cancelled, a row with wrong data), deleted on the platform with a reason, from the CLI or the API.

The gateway itself withdraws rows only to correct a ticket line (gateway.domain.outbox) and sends a corrected row after;
an operator's withdrawal is final: once the platform accepts it, the rows it held are `withdrawn` in the outbox
(the reason in their error) and nothing goes up in their place. States here: asked (recorded; the forwarder's
planner makes its request), sending, done (the platform deleted the row), refused (the platform keeps it; its
reason in `error`). A row is named by its `fixmedins_bchno` (`trace-gateway outbox --rows` lists them). Refused
at once: a row the platform does not hold, a row the gateway is correcting, a row with a withdrawal under way,
and a sale that an accepted return names (withdraw the return first, or the platform holds an orphan return).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gateway.errors import GatewayError
from gateway.store.base import Tx

__all__ = ["STATES", "Withdrawal", "WithdrawalError", "check", "record", "under_way", "listing", "due",
           "sending", "settle", "of_request", "state_counts"]

STATES = ("asked", "sending", "done", "refused")
_COLUMNS = "id, bchno, institution, infno, reason, operator, state, error, asked_ms, changed_ms"


class WithdrawalError(GatewayError, ValueError):
    """A withdrawal that cannot be asked for: `missing` (no such row on the platform) or `conflict`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Withdrawal:
    id: int
    bchno: str
    """The fixmedins_bchno of the row to delete."""
    institution: str
    infno: str
    """The interface the row went up by (its 3507 inv_data_type follows from it)."""
    reason: str
    operator: str
    state: str
    error: str
    """The platform's reason when it refused, or why the request could not be made."""
    asked_ms: int
    changed_ms: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check(reason: str, operator: str) -> None:
    """WithdrawalError when the reason or the operator's name will not do."""
    if not reason.strip() or len(reason) > 500 or len(operator) > 64:
        raise WithdrawalError("invalid", "a withdrawal needs a reason (1-500 characters) and an operator name "
                              "(at most 64, as a user's name)")


def record(tx: Tx, bchno: str, *, institution: str, infno: str, reason: str, operator: str,
           now_ms: int) -> Withdrawal:
    """Keep an operator's withdrawal of the accepted row `bchno` (`check`ed, and checked against the outbox, by
    `outbox.ask_withdrawal`, the one caller); the forwarder sends it."""
    row = tx.one("INSERT INTO withdrawals (bchno, institution, infno, reason, operator, state, asked_ms, changed_ms) "
                 f"VALUES (?, ?, ?, ?, ?, 'asked', ?, ?) RETURNING {_COLUMNS}",
                 (bchno, institution, infno, reason.strip(), operator, now_ms, now_ms))
    assert row is not None
    return Withdrawal(*row)


def under_way(tx: Tx, bchno: str) -> bool:
    """Whether an operator's withdrawal of `bchno` is asked or being sent."""
    return tx.one("SELECT 1 FROM withdrawals WHERE bchno = ? AND state IN ('asked', 'sending')", (bchno,)) is not None


def listing(tx: Tx, *, state: str = "", limit: int = 100) -> list[Withdrawal]:
    """Newest first, of one state when given."""
    where, parameters = ("WHERE state = ?", [state]) if state else ("", [])
    return [Withdrawal(*row) for row in tx.all(f"SELECT {_COLUMNS} FROM withdrawals {where} ORDER BY id DESC "
                                               "LIMIT ?", [*parameters, max(1, min(limit, 1000))])]


def due(tx: Tx) -> list[Withdrawal]:
    """The asked withdrawals, for the planner."""
    return [Withdrawal(*row) for row in tx.all(f"SELECT {_COLUMNS} FROM withdrawals WHERE state = 'asked' "
                                               "ORDER BY id")]


def sending(tx: Tx, withdrawal_id: int, request_id: int, *, now_ms: int) -> None:
    tx.write("UPDATE withdrawals SET state = 'sending', request_id = ?, changed_ms = ? WHERE id = ?",
             (request_id, now_ms, withdrawal_id))


def of_request(tx: Tx, request_id: int) -> Withdrawal | None:
    """The operator's withdrawal a request carries, if it carries one (else it is the gateway's own)."""
    row = tx.one(f"SELECT {_COLUMNS} FROM withdrawals WHERE request_id = ? AND state = 'sending'", (request_id,))
    return Withdrawal(*row) if row else None


def settle(tx: Tx, withdrawal_id: int, *, accepted: bool, error: str = "", now_ms: int) -> None:
    tx.write("UPDATE withdrawals SET state = ?, error = ?, changed_ms = ? WHERE id = ?",
             ("done" if accepted else "refused", error[:2000], now_ms, withdrawal_id))


def state_counts(tx: Tx) -> dict[str, int]:
    """Withdrawals per state."""
    return {state: int(count) for state, count in tx.all("SELECT state, count(*) FROM withdrawals GROUP BY state")}
