"""Commands to a device and the device's answers (docs/protocol.md, "Command" and "Command answer").

A command is a COSE_Mac0 with kid "gateway" and the device's own key; the answer comes back on
`tc/v1/<dev>/res`, a COSE_Mac0 with the device's kid and key, naming the command's id.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

import cbor2

from gateway.wire.protocol import Operation, ProtocolError, Signed, decode_cbor, shown

__all__ = ["CommandType", "Result", "Answer", "CONFIG_RANGES", "sign_command", "check_argument", "parse_answer",
           "MAX_ANSWER_BYTES"]

_PROTECTED = cbor2.dumps({1: 5})
MAX_ANSWER_BYTES = 512
"""An answer's COSE_Mac0 is refused (`oversized`) above this."""
_TIME_RANGE_MS = (1_577_836_800_000, 4_102_444_800_000)  # 2020-2099, as the device checks
CONFIG_RANGES = {"debounce_ms": (0, 60000), "line_timeout_ms": (0, 10000), "gs1_form": (0, 2),
                 "status_interval_s": (1, 86400), "ack_timeout_s": (1, 3600)}
"""What the config command may change on a running device, with the inclusive range the device accepts."""


class CommandType(IntEnum):
    TIME = 1
    MODE = 2
    RESEND = 3
    CONFIG = 4
    REBOOT = 5


class Result(IntEnum):
    """What the device did with a command (answer key 3)."""

    APPLIED = 0
    REFUSED_RANGE = 1
    """The command's shape or an argument is outside what the device accepts."""
    REFUSED_REPLAY = 2
    """Its id is not above the last id the device accepted."""
    REFUSED_LOCKED = 3
    """The device lost its replay guard and refuses commands until its own clock is synced by NTP."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A device's signed answer to one command."""

    device: str
    command_id: int
    """The command's id; 0 when the command's id was not an unsigned integer."""
    kind: int
    """The command's type as the device read it (0: not an unsigned integer)."""
    result: Result
    last_id: int
    """The last command id the device's replay guard accepted."""
    value: object = None
    """What the command left: the device time (time), the mode (mode), the first seq resent (resend), the
    run-time settings now in effect (config); None for reboot and refusals."""


def sign_command(key: bytes, command_id: int, kind: CommandType, argument: object, *, issued_ms: int) -> bytes:
    """The signed command; `command_id` must exceed every id the device accepted before (it refuses replays)."""
    payload = cbor2.dumps({0: 1, 1: command_id, 2: int(kind), 3: issued_ms, 4: argument}, canonical=True)
    tag = hmac.new(key, cbor2.dumps(["MAC0", _PROTECTED, b"", payload]), hashlib.sha256).digest()
    return cbor2.dumps(cbor2.CBORTag(17, [_PROTECTED, {4: b"gateway"}, payload, tag]))


def check_argument(kind: CommandType, argument: object) -> object:
    """`argument` if the device would accept it for `kind`; ValueError naming what was expected otherwise.

    >>> check_argument(CommandType.MODE, 3)
    3
    >>> check_argument(CommandType.CONFIG, {"debounce_ms": 70000})
    Traceback (most recent call last):
    ...
    ValueError: config debounce_ms must be a whole number 0-60000, got 70000
    """
    def whole(value: object, low: int, high: int, what: str) -> int:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{what} must be a whole number {low}-{high}, got {shown(value)}")
        return value

    if kind == CommandType.TIME:
        return whole(argument, _TIME_RANGE_MS[0], _TIME_RANGE_MS[1] - 1, "time (ms since the epoch)")
    if kind == CommandType.MODE:
        return whole(argument, 1, max(Operation), "mode")
    if kind == CommandType.RESEND:
        return whole(argument, 1, 2**63 - 1, "resend seq")
    if kind == CommandType.CONFIG:
        if not isinstance(argument, dict) or not argument:
            raise ValueError(f"config must be a map of {', '.join(CONFIG_RANGES)}, got {shown(argument)}")
        for name, value in argument.items():
            if name not in CONFIG_RANGES:
                raise ValueError(f"config {shown(name)} cannot change at run time; only {', '.join(CONFIG_RANGES)}")
            whole(value, *CONFIG_RANGES[name], f"config {name}")
        return dict(argument)
    if argument is not None:
        raise ValueError(f"reboot takes no argument, got {shown(argument)}")
    return None


def parse_answer(signed: Signed) -> Answer:
    """The answer in a verified COSE_Mac0 (`protocol.verify_mac0` with the topic's device); ProtocolError
    ("answer_malformed") when its payload is not an answer map."""
    fields = decode_cbor(signed.payload, "answer_malformed", "answer")
    if type(fields) is not dict or fields.get(0) != 1 or set(fields) - {0, 1, 2, 3, 4, 5}:
        raise ProtocolError("answer_malformed", f"expected a version 1 map with keys 0-5, got {shown(fields)}")
    found = [fields.get(key) for key in (1, 2, 3, 4)]
    numbers = [number for number in found if type(number) is int and 0 <= number < 2**63]
    if len(numbers) != 4:
        raise ProtocolError("answer_malformed", f"keys 1-4 must be unsigned integers, got {shown(found)}")
    if numbers[2] not in Result._value2member_map_:
        raise ProtocolError("answer_malformed", f"unknown result {numbers[2]}")
    value = fields.get(5)
    if not (value is None or type(value) is int or isinstance(value, dict) and all(
            isinstance(name, str) and type(number) is int for name, number in value.items())):
        raise ProtocolError("answer_malformed", f"value must be a number or a map of numbers, got {shown(value)}")
    return Answer(device=signed.kid, command_id=numbers[0], kind=numbers[1], result=Result(numbers[2]),
                  last_id=numbers[3], value=value)
