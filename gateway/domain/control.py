"""Device control: the `commands` table (its one owner), which is both the send queue and the audit log.

An operator's command (CLI or API) becomes a row: who, when, which device, the command and its argument, in
state `queued`. The running gateway's sender (gateway/ingest/command_sender.py) claims queued rows, marks them `sent`
and publishes them signed; the device's signed answer (docs/protocol.md, "Command answer") moves the row to
`answered` with the result and the value the device reports. A row nobody sent within `QUEUE_EXPIRY_MS`
(the gateway was down) becomes `expired`, never sent late; a sent row without an answer within
`ANSWER_WAIT_MS` becomes `unanswered` (the device was offline, or its key differs), and a late answer still
lands. Rows are never deleted: the table is the audit log.

Command ids follow the protocol: the gateway's ms clock, and above every id this device was sent or said it
accepted, so the device's replay guard takes them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from gateway.domain import devices
from gateway.errors import GatewayError
from gateway.store.base import Tx
from gateway.wire.commands import Answer, CommandType, Result, check_argument

__all__ = ["Command", "ControlError", "issue", "claim", "record_answer", "list_commands", "get_command",
           "KINDS", "RESULTS", "QUEUE_EXPIRY_MS", "ANSWER_WAIT_MS"]

KINDS = {kind.name.lower(): kind for kind in CommandType}
"""Command names as operators type them: time, mode, resend, config, reboot."""
QUEUE_EXPIRY_MS = 60_000
ANSWER_WAIT_MS = 30_000
RESULTS = {Result.APPLIED: "applied", Result.REFUSED_RANGE: "refused: out of range",
            Result.REFUSED_REPLAY: "refused: replayed id", Result.REFUSED_LOCKED: "refused: replay guard lost"}
"""The device's result as the audit log keeps it (gateway/faces/wording.py says it in Chinese)."""
_COLUMNS = ("id, device, command_id, kind, argument, issued_by, issued_ms, state, sent_ms, answer_ms, result, "
            "answer, device_last_id")


class ControlError(GatewayError, ValueError):
    """A command that cannot be issued (unknown device, bad argument: `invalid`) or a row that does not exist
    (`missing`)."""

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Command:
    """One row of the audit log."""

    id: int
    device: str
    command_id: int
    """The id signed into the command (the device refuses ids at or below the last it accepted)."""
    kind: str
    argument: object
    issued_by: str
    """The user's name (API), or cli:<login> (the CLI)."""
    issued_ms: int
    state: str
    """queued, sent, answered, expired (never sent: the gateway was not running), unanswered."""
    sent_ms: int
    answer_ms: int
    result: str
    """applied, or refused: and why (the device's answer); empty before an answer."""
    answer: object
    """What the device reports: its time, mode, first seq resent or settings now in effect; None if nothing."""
    device_last_id: int
    """The last command id the device's replay guard had accepted when it answered."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _command(row: tuple[object, ...]) -> Command:
    values = list(row)
    values[4] = json.loads(str(values[4]))
    values[11] = json.loads(str(values[11])) if values[11] else None
    return Command(*values)  # type: ignore[arg-type]


def issue(tx: Tx, device: str, kind: str, argument: object, *, by: str, now_ms: int) -> Command:
    """Queue a command for `device`, checked as the device would check it; the new row."""
    if kind not in KINDS:
        raise ControlError(f"command {kind!r}: one of {', '.join(KINDS)}")
    if not devices.is_registered(tx, device):
        raise ControlError(f"no device {device!r} registered (see trace-gateway devices)")
    try:
        argument = check_argument(KINDS[kind], argument)
    except ValueError as error:
        raise ControlError(str(error)) from None
    highest = tx.one("SELECT max(command_id), max(device_last_id) FROM commands WHERE device = ?", (device,))
    command_id = max([now_ms] + [int(value) + 1 for value in (highest or ()) if value is not None])
    row = tx.one("INSERT INTO commands (device, command_id, kind, argument, issued_by, issued_ms, state) "
                 f"VALUES (?, ?, ?, ?, ?, ?, 'queued') RETURNING {_COLUMNS}",
                 (device, command_id, kind, json.dumps(argument), by, now_ms))
    assert row is not None
    return _command(row)


def claim(tx: Tx, *, now_ms: int, instance: str) -> list[Command]:
    """Mark the queued commands this gateway sends now as `sent` (several instances: each row goes to one),
    expire those queued too long ago, and give up waiting on answers that did not come."""
    tx.execute("UPDATE commands SET state = 'expired' WHERE state = 'queued' AND issued_ms < ?",
               (now_ms - QUEUE_EXPIRY_MS,))
    tx.execute("UPDATE commands SET state = 'unanswered' WHERE state = 'sent' AND sent_ms < ?",
               (now_ms - ANSWER_WAIT_MS,))
    rows = tx.all(f"UPDATE commands SET state = 'sent', sent_ms = ?, sent_by = ? WHERE state = 'queued' "
                  f"RETURNING {_COLUMNS}", (now_ms, instance))
    return sorted((_command(row) for row in rows), key=lambda command: command.command_id)


def record_answer(tx: Tx, answer: Answer, signed: bytes, *, now_ms: int) -> bool:
    """Keep a device's answer with the command it answers; False when no sent command of the device has its id
    (an automatic time command, or an answer already recorded)."""
    changed = tx.execute(
        "UPDATE commands SET state = 'answered', answer_ms = ?, result = ?, answer = ?, device_last_id = ?, "
        "answer_signed = ? WHERE device = ? AND command_id = ? AND state IN ('sent', 'unanswered')",
        (now_ms, RESULTS[answer.result], "" if answer.value is None else json.dumps(answer.value),
         answer.last_id, signed, answer.device, answer.command_id))
    return changed > 0


def list_commands(tx: Tx, *, device: str = "", limit: int = 100) -> list[Command]:
    """Newest first."""
    clause, parameters = ("WHERE device = ?", [device]) if device else ("", [])
    rows = tx.all(f"SELECT {_COLUMNS} FROM commands {clause} ORDER BY id DESC LIMIT ?",
                  (*parameters, max(1, min(limit, 1000))))
    return [_command(row) for row in rows]


def get_command(tx: Tx, row_id: int) -> Command:
    row = tx.one(f"SELECT {_COLUMNS} FROM commands WHERE id = ?", (row_id,))
    if row is None:
        raise ControlError(f"no command {row_id}", kind="missing")
    return _command(row)
