"""CBOR (RFC 8949) for the device: the profile the wire contract uses.

Types: unsigned and negative integers to 64 bits, byte and text strings,
arrays, maps, tags, false/true/null. Floats, undefined and other simple
values are outside the profile and rejected with `CBORError`.

`dumps` always writes definite lengths in the core deterministic encoding
(RFC 8949 section 4.2.1): shortest heads, map keys sorted by the bytes of
their encoding. `loads` bounds everything by the input: a declared length
or item count larger than the bytes left is refused before anything is
allocated, nesting is capped, and trailing bytes are an error.

>>> dumps({1: "a", 0: [True, None]}).hex()
'a20082f5f60161'
>>> loads(bytes.fromhex('a20082f5f60161'))[0]
[True, None]
"""

import struct

from tcagent.codec.compat import const, native
from tcagent.codec.errors import AgentError

_MAJOR_UINT = const(0)
_MAJOR_NINT = const(1)
_MAJOR_BYTES = const(2)
_MAJOR_TEXT = const(3)
_MAJOR_ARRAY = const(4)
_MAJOR_MAP = const(5)
_MAJOR_TAG = const(6)
_MAJOR_SIMPLE = const(7)
_AI_INDEFINITE = const(31)
_BREAK = const(0xFF)
_UINT64_LIMIT = const(0x10000000000000000)

DEFAULT_MAX_SIZE = const(65536)
DEFAULT_MAX_DEPTH = const(16)


class CBORError(AgentError):
    """Input or value outside the profile; the message says which and where."""


class Tag:
    """A tagged item: `tag` number and its `value`."""

    __slots__ = ("tag", "value")

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


def uint(value):
    """`value` when it is an unsigned integer of the profile (bool is not one), else -1."""
    if type(value) is int and 0 <= value < _UINT64_LIMIT:
        return value
    return -1


# ---- encoding ---------------------------------------------------------------


@native
def write_head(out, major, arg):
    """Append the shortest head for `major` with argument `arg` (0 <= arg < 2**64)."""
    if arg < 24:
        out.append((major << 5) | arg)
    elif arg < 0x100:
        out.append((major << 5) | 24)
        out.append(arg)
    elif arg < 0x10000:
        out.append((major << 5) | 25)
        out.extend(struct.pack(">H", arg))
    elif arg < 0x100000000:
        out.append((major << 5) | 26)
        out.extend(struct.pack(">I", arg))
    else:
        out.append((major << 5) | 27)
        out.extend(arg.to_bytes(8, "big"))


def _encode(out, value, depth):
    if depth > DEFAULT_MAX_DEPTH:
        raise CBORError("nesting deeper than %d" % DEFAULT_MAX_DEPTH)
    if value is False:
        out.append(0xF4)
    elif value is True:
        out.append(0xF5)
    elif value is None:
        out.append(0xF6)
    elif isinstance(value, int):
        if value >= 0:
            if value >= _UINT64_LIMIT:
                raise CBORError("integer %d does not fit 64 bits" % value)
            write_head(out, _MAJOR_UINT, value)
        else:
            if value < -_UINT64_LIMIT:
                raise CBORError("integer %d does not fit 64 bits" % value)
            write_head(out, _MAJOR_NINT, -1 - value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        write_head(out, _MAJOR_BYTES, len(value))
        out.extend(value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        write_head(out, _MAJOR_TEXT, len(data))
        out.extend(data)
    elif isinstance(value, (list, tuple)):
        write_head(out, _MAJOR_ARRAY, len(value))
        for item in value:
            _encode(out, item, depth + 1)
    elif isinstance(value, dict):
        entries = []
        for key in value:
            key_buffer = bytearray()
            _encode(key_buffer, key, depth + 1)
            entries.append((bytes(key_buffer), key))
        entries.sort(key=_first)
        write_head(out, _MAJOR_MAP, len(entries))
        previous = None
        for encoded_key, key in entries:
            if encoded_key == previous:
                raise CBORError("map has two keys encoding as %s" % encoded_key.hex())
            previous = encoded_key
            out.extend(encoded_key)
            _encode(out, value[key], depth + 1)
    elif isinstance(value, Tag):
        if not 0 <= value.tag < _UINT64_LIMIT:
            raise CBORError("tag number %r out of range" % value.tag)
        write_head(out, _MAJOR_TAG, value.tag)
        _encode(out, value.value, depth + 1)
    else:
        raise CBORError("cannot encode %s: outside the profile" % type(value).__name__)


def _first(pair):
    return pair[0]


def dumps(value):
    """Encode `value` deterministically and return the bytes."""
    out = bytearray()
    _encode(out, value, 0)
    return bytes(out)


# ---- decoding ---------------------------------------------------------------


class _Reader:
    """Cursor over the input with the decoding limits."""

    __slots__ = ("data", "pos", "max_depth", "indefinite", "deterministic")

    def __init__(self, data, max_depth, indefinite, deterministic):
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.indefinite = indefinite
        self.deterministic = deterministic

    def left(self):
        return len(self.data) - self.pos

    def take(self, count):
        if count > self.left():
            raise CBORError("truncated: %d bytes wanted at offset %d, %d left" % (count, self.pos, self.left()))
        start = self.pos
        self.pos = start + count
        return self.data[start : self.pos]

    def byte(self):
        if self.pos >= len(self.data):
            raise CBORError("truncated: item wanted at offset %d" % self.pos)
        value = self.data[self.pos]
        self.pos += 1
        return value


def _argument(reader, info, start):
    """Read the head argument for additional info `info`; None means indefinite."""
    if info < 24:
        return info
    if info == 24:
        arg = reader.byte()
        minimum = 24
    elif info == 25:
        arg = struct.unpack(">H", reader.take(2))[0]
        minimum = 0x100
    elif info == 26:
        arg = struct.unpack(">I", reader.take(4))[0]
        minimum = 0x10000
    elif info == 27:
        arg = int.from_bytes(reader.take(8), "big")
        minimum = 0x100000000
    elif info == _AI_INDEFINITE:
        if not reader.indefinite:
            raise CBORError("indefinite length at offset %d not allowed" % start)
        return None
    else:
        raise CBORError("reserved additional info %d at offset %d" % (info, start))
    if reader.deterministic and arg < minimum:
        raise CBORError("non-shortest head at offset %d" % start)
    return arg


def _decode(reader, depth):
    if depth > reader.max_depth:
        raise CBORError("nesting deeper than %d at offset %d" % (reader.max_depth, reader.pos))
    start = reader.pos
    initial = reader.byte()
    major = initial >> 5
    info = initial & 0x1F
    if major == _MAJOR_SIMPLE:
        return _simple(info, start)
    if info == _AI_INDEFINITE and major in (_MAJOR_UINT, _MAJOR_NINT, _MAJOR_TAG):
        raise CBORError("indefinite length on major type %d at offset %d" % (major, start))
    arg = _argument(reader, info, start)
    if major == _MAJOR_UINT:
        return arg
    if major == _MAJOR_NINT:
        return -1 - arg
    if major == _MAJOR_BYTES or major == _MAJOR_TEXT:
        data = reader.take(arg) if arg is not None else _chunks(reader, major, start)
        if major == _MAJOR_BYTES:
            return bytes(data)
        try:
            return str(data, "utf-8")
        except UnicodeError:
            raise CBORError("invalid UTF-8 in text string at offset %d" % start)
    if major == _MAJOR_ARRAY:
        items = []  # type: list
        while _more(reader, arg, len(items), start):
            items.append(_decode(reader, depth + 1))
        return items
    if major == _MAJOR_MAP:
        result = {}  # type: dict
        previous_key = None
        while _more(reader, arg, len(result), start):
            key_start = reader.pos
            key = _decode(reader, depth + 1)
            if reader.deterministic:
                encoded_key = reader.data[key_start : reader.pos]
                if previous_key is not None and bytes(encoded_key) <= previous_key:
                    raise CBORError("map keys not in deterministic order at offset %d" % key_start)
                previous_key = bytes(encoded_key)
            if isinstance(key, (list, dict, Tag)):
                raise CBORError("map key at offset %d is an array, map or tag" % key_start)
            if key in result:
                raise CBORError("duplicate map key %r at offset %d" % (key, key_start))
            result[key] = _decode(reader, depth + 1)
        return result
    return Tag(arg, _decode(reader, depth + 1))


def _more(reader, count, done, start):
    """Whether another array item or map entry follows; checks counts against the input."""
    if count is None:
        if reader.pos < len(reader.data) and reader.data[reader.pos] == _BREAK:
            reader.pos += 1
            return False
        return True
    if done == 0 and count > reader.left():
        raise CBORError("truncated: %d items declared at offset %d, %d bytes left" % (count, start, reader.left()))
    return done < count


def _chunks(reader, major, start):
    """Join the definite chunks of an indefinite byte or text string."""
    joined = bytearray()
    while True:
        chunk_start = reader.pos
        initial = reader.byte()
        if initial == _BREAK:
            return joined
        if initial >> 5 != major or initial & 0x1F == _AI_INDEFINITE:
            raise CBORError("bad chunk at offset %d in indefinite string at offset %d" % (chunk_start, start))
        chunk = reader.take(_argument(reader, initial & 0x1F, chunk_start))
        if major == _MAJOR_TEXT:
            try:
                str(chunk, "utf-8")
            except UnicodeError:
                raise CBORError("invalid UTF-8 in text chunk at offset %d" % chunk_start)
        joined.extend(chunk)


def _simple(info, start):
    if info == 20:
        return False
    if info == 21:
        return True
    if info == 22:
        return None
    if info == _AI_INDEFINITE:
        raise CBORError("break outside an indefinite item at offset %d" % start)
    if 25 <= info <= 27:
        raise CBORError("float at offset %d: outside the profile" % start)
    raise CBORError("simple value (info %d) at offset %d: outside the profile" % (info, start))


def loads(data, max_size=DEFAULT_MAX_SIZE, max_depth=DEFAULT_MAX_DEPTH, indefinite=False, deterministic=False):
    """Decode exactly one item from `data`.

    `max_size` caps the input length, `max_depth` the nesting; `indefinite`
    admits indefinite lengths; `deterministic` also demands the core
    deterministic encoding (shortest heads, sorted keys).
    """
    if len(data) > max_size:
        raise CBORError("oversized: %d bytes, limit %d" % (len(data), max_size))
    if deterministic and indefinite:
        raise CBORError("deterministic encoding has no indefinite lengths")
    reader = _Reader(memoryview(data), max_depth, indefinite, deterministic)
    value = _decode(reader, 0)
    if reader.left():
        raise CBORError("%d bytes of trailing data at offset %d" % (reader.left(), reader.pos))
    return value
