"""COSE_Mac0 (RFC 9052) with HMAC 256/256 (COSE alg 5), on MicroPython's hashlib.

Profile (docs/protocol.md): tag 17; protected header exactly {1: 5};
unprotected header {4: kid} with the device id as bytes; attached payload;
empty external AAD; 32-byte tag.
"""

import hashlib

from tcagent.codec import cbor
from tcagent.codec.compat import const, native
from tcagent.codec.errors import AgentError

ALG_HMAC_256_256 = const(5)
TAG_MAC0 = const(17)
_HEADER_ALG = const(1)
_HEADER_CRIT = const(2)
_HEADER_KID = const(4)
_TAG_SIZE = const(32)
_BLOCK_SIZE = const(64)
PROTECTED = b"\xa1\x01\x05"  # {1: 5}, the protected header as signed


class CoseError(AgentError):
    """A message outside the profile or with a tag that does not verify."""


# MAC_structure ["MAC0", h'a10105', h'', payload] up to the payload's head: what the inner hash takes after the
# key's pad whenever the protected header is the profile's own.
_MAC0_START = b"\x84\x64MAC0\x43" + PROTECTED + b"\x40"
# the tagged message up to the kid's head: 17([h'a10105', {4: kid}, ...
_MESSAGE_START = b"\xd1\x84\x43" + PROTECTED + b"\xa1\x04"
_TAG_HEAD = b"\x58\x20"


class MacKey:
    """An HMAC-SHA256 key with its padded inner and outer blocks computed once.

    MicroPython's hashlib cannot copy a hash object, so the state after the pad cannot be kept; the inner
    pad is kept with the profile's MAC_structure prefix joined to it, so one call hashes both.
    """

    __slots__ = ("inner_pad", "outer_pad", "inner_start")

    def __init__(self, key):
        if len(key) < 16:
            raise CoseError("MAC key of %d bytes is too short (at least 16, 32 expected)" % len(key))
        if len(key) > _BLOCK_SIZE:
            key = hashlib.sha256(key).digest()
        self.inner_pad = bytes(byte ^ 0x36 for byte in key) + bytes([0x36] * (_BLOCK_SIZE - len(key)))
        self.outer_pad = bytes(byte ^ 0x5C for byte in key) + bytes([0x5C] * (_BLOCK_SIZE - len(key)))
        self.inner_start = self.inner_pad + _MAC0_START


def _bstr_head(length):
    head = bytearray()
    cbor.write_head(head, 2, length)
    return bytes(head)  # bytes, for bytes.join on MicroPython


def _mac(key, protected, payload_head, payload):
    """HMAC-SHA256 over ["MAC0", protected, h'', payload], fed in pieces (no copy of the payload)."""
    if protected == PROTECTED:
        inner = hashlib.sha256(key.inner_start)
    else:
        inner = hashlib.sha256(key.inner_pad)
        inner.update(b"\x84\x64MAC0")
        inner.update(_bstr_head(len(protected)))
        inner.update(protected)
        inner.update(b"\x40")
    inner.update(payload_head)
    inner.update(payload)
    outer = hashlib.sha256(key.outer_pad)
    outer.update(inner.digest())
    return outer.digest()


def _equal(left, right):
    """Compare in time independent of where the inputs differ."""
    if len(left) != len(right):
        return False
    difference = 0
    for index in range(len(left)):
        difference |= left[index] ^ right[index]
    return difference == 0


_kid_start = [b"", b""]  # kid and the message up to the payload's head for it, kept: a device signs with one kid


@native
def sign(key, payload, kid):
    """Return the tagged COSE_Mac0 bytes for `payload` (bytes) from `kid` (bytes).

    The message is written once, into a buffer with room for it; its payload head and payload, contiguous
    there, are what the MAC hashes after the MAC_structure prefix.
    """
    if kid != _kid_start[0]:
        _kid_start[0] = kid
        _kid_start[1] = _MESSAGE_START + _bstr_head(len(kid)) + kid
    start = _kid_start[1]
    length = len(payload)
    message = bytearray(len(start) + length + 37)  # the head of the payload takes at most 3 bytes
    message[:] = start  # its room kept
    if length < 24:
        message.append(0x40 | length)
    elif length < 256:  # an event's usual size, written inline: a call costs more than the two bytes
        message.append(0x58)
        message.append(length)
    else:
        cbor.write_head(message, 2, length)
    message += payload
    inner = hashlib.sha256(key.inner_start)
    inner.update(memoryview(message)[len(start):])
    outer = hashlib.sha256(key.outer_pad)
    outer.update(inner.digest())
    message += _TAG_HEAD
    message += outer.digest()
    return bytes(message)


class Mac0:
    """The parts of a COSE_Mac0 message, before or after verification."""

    __slots__ = ("protected", "kid", "payload", "tag")

    def __init__(self, protected, kid, payload, tag):
        self.protected = protected
        self.kid = kid
        self.payload = payload
        self.tag = tag


def parse(message, max_size=cbor.DEFAULT_MAX_SIZE):
    """Split `message` into its parts, checking the profile; the tag is not verified yet."""
    try:
        item = cbor.loads(message, max_size=max_size, max_depth=4)
    except cbor.CBORError as error:
        raise CoseError("malformed CBOR: %s" % error)
    if not isinstance(item, cbor.Tag) or item.tag != TAG_MAC0:
        raise CoseError("not a tagged COSE_Mac0 (tag 17)")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise CoseError("COSE_Mac0 must be an array of 4 items")
    protected, unprotected, payload, tag = parts
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise CoseError("headers must be a byte string and a map")
    if not isinstance(payload, bytes):
        raise CoseError("payload must be attached as a byte string")
    if not isinstance(tag, bytes) or len(tag) != _TAG_SIZE:
        raise CoseError("tag must be %d bytes" % _TAG_SIZE)
    try:
        protected_map = cbor.loads(protected, max_depth=2)
    except cbor.CBORError as error:
        raise CoseError("malformed protected header: %s" % error)
    if not isinstance(protected_map, dict) or protected_map.get(_HEADER_ALG) != ALG_HMAC_256_256:
        raise CoseError("protected header must name alg 5 (HMAC 256/256)")
    if _HEADER_CRIT in protected_map:
        raise CoseError("critical headers are not supported")
    if _HEADER_ALG in unprotected:
        raise CoseError("alg must be protected")
    kid = unprotected.get(_HEADER_KID, protected_map.get(_HEADER_KID))
    if not isinstance(kid, bytes):
        raise CoseError("kid (header 4) must be a byte string")
    return Mac0(protected, kid, payload, tag)


def verify(key, mac0):
    """Return the payload of a parsed `mac0` if its tag verifies under `key`."""
    if not _equal(_mac(key, mac0.protected, _bstr_head(len(mac0.payload)), mac0.payload), mac0.tag):
        raise CoseError("tag does not verify for kid %r" % mac0.kid)
    return mac0.payload
