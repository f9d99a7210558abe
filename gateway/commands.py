"""Commands to a device (docs/protocol.md, "Command"): COSE_Mac0 with kid "gateway" and the device's own key."""

from __future__ import annotations

import hashlib
import hmac
from enum import IntEnum

import cbor2

__all__ = ["CommandType", "sign_command"]

_PROTECTED = cbor2.dumps({1: 5})


class CommandType(IntEnum):
    TIME = 1
    MODE = 2
    RESEND = 3
    CONFIG = 4
    REBOOT = 5


def sign_command(key: bytes, command_id: int, kind: CommandType, argument: object, *, issued_ms: int) -> bytes:
    """The signed command; `command_id` must exceed every id the device accepted before (it refuses replays)."""
    payload = cbor2.dumps({0: 1, 1: command_id, 2: int(kind), 3: issued_ms, 4: argument}, canonical=True)
    tag = hmac.new(key, cbor2.dumps(["MAC0", _PROTECTED, b"", payload]), hashlib.sha256).digest()
    return cbor2.dumps(cbor2.CBORTag(17, [_PROTECTED, {4: b"gateway"}, payload, tag]))
