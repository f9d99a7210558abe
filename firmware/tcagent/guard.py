"""The replay guard for signed commands: the last accepted command id, kept so that it never goes back.

The id is stored in two alternating copies with a generation and a CRC
(tcagent.copies): a power cut at any byte of a write leaves the id before or
the id after it readable, never an empty or zero one. The id is written
before the command is applied, so a cut can lose a command, never apply one
twice.

When neither copy is readable (flash damage, or the files are missing on a
device that booted before), the guard is *lost* and it must not fall back to
0: that would accept any command ever captured. It then refuses every
command until the device's own clock is synced by NTP, and from then on
accepts only ids above that clock in ms (the floor): the gateway numbers its
commands with its ms clock (docs/protocol.md), so anything captured before
the floor is refused. A time command from the gateway cannot unlock it (it
could be a replay). The status shows alarm bit 16 while the guard is lost.
"""

import os
import struct

from tcagent import copies

_MAGIC = b"TCG1"
_BODY = "<Q"
_ID_LIMIT = 1 << 64


class CommandGuard:
    """Accepts a command id only when it is above every id accepted before; survives power cuts."""

    def __init__(self, base, new_device, legacy_path=""):
        """`base`.a/.b hold the id; `new_device`: the journal was created at this boot (nothing accepted yet).

        `legacy_path` is the plain-text file of firmware 0.2.0, read once when the copies do not exist yet.
        """
        self._copies = copies.Copies(base, _MAGIC, 8)
        self._body = bytearray(8)
        self.last_id = 0
        self.lost = False
        body = self._copies.load()
        if body is not None:
            self.last_id = struct.unpack(_BODY, body)[0]
            return
        if self._copies.found:  # copies present, neither whole
            self.lost = True
            return
        legacy = _read_legacy(legacy_path) if legacy_path else None
        if legacy == -1:
            self.lost = True  # the 0.2.0 file torn by a power cut: the very case this guard exists for
        elif legacy is not None:
            self._save(legacy)
            try:
                os.remove(legacy_path)
            except OSError:
                pass
        elif new_device:
            self._save(0)  # from now on the copies exist: a later absence means damage
        else:
            self.lost = True

    def _save(self, command_id):
        struct.pack_into(_BODY, self._body, 0, command_id)
        self._copies.save(self._body)
        self.last_id = command_id

    def accept(self, command_id, floor_ms=0):
        """Record `command_id` (durably) and return True if it is new; False for a replay or when locked.

        `floor_ms` is the device's NTP-synced clock in ms, 0 when it has none: it unlocks a lost guard.
        """
        if self.lost:
            if not floor_ms:
                return False
            self._save(floor_ms)
            self.lost = False
        if type(command_id) is not int or not self.last_id < command_id < _ID_LIMIT:
            return False
        self._save(command_id)
        return True


def _read_legacy(path):
    """The id in firmware 0.2.0's text file; None when the file is missing; -1 (lost) when it is unreadable."""
    try:
        with open(path) as stream:
            text = stream.read(24)
    except OSError:
        return None
    text = text.strip()
    if text and text.isdigit() and int(text) < _ID_LIMIT:
        return int(text)
    return -1
