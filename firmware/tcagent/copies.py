"""A small record kept in two alternating files, so that a power cut at any byte leaves one whole copy.

Each copy is

    magic 4 | generation u32 | body | crc32 u32

(little-endian; the CRC covers every byte before it). A write goes to the
older copy (`base.a` for even generations, `base.b` for odd ones) with the
next generation: a cut during the write damages only that copy, and the
reader takes the valid copy with the highest generation, i.e. the record
before or after the write, never an empty or zeroed one. The journal's meta
and the command guard are kept this way.
"""

import binascii
import struct

from tcagent.codec.compat import const

_FRAME = const(12)  # magic, generation, crc


class Copies:
    """The two files `base`.a and `base`.b holding a `body_size`-byte record."""

    def __init__(self, base, magic, body_size):
        self.paths = (base + ".a", base + ".b")
        self.magic = magic
        self.generation = 0
        self.found = 0  # copies present at the last load
        self.damaged = 0  # copies present but unreadable (torn, wrong size, bad CRC) at the last load
        self._data = bytearray(body_size + _FRAME)

    def load(self):
        """The body of the newest whole copy (bytes), or None when neither copy is whole."""
        data = self._data
        size = len(data)
        best = None
        best_generation = 0
        self.found = 0
        self.damaged = 0
        for path in self.paths:
            try:
                stream = open(path, "rb")
            except OSError:
                continue
            self.found += 1
            with stream:
                count = stream.readinto(data)
            if count == size and data[:4] == self.magic:
                generation = struct.unpack_from("<I", data, 4)[0]
                crc = struct.unpack_from("<I", data, size - 4)[0]
                if binascii.crc32(memoryview(data)[: size - 4]) & 0xFFFFFFFF == crc:
                    if best is None or generation > best_generation:
                        best_generation = generation
                        best = bytes(data[8 : size - 4])
                    continue
            self.damaged += 1
        self.generation = best_generation
        return best

    def save(self, body):
        """Write `body` as the next generation into the older copy, flushed before returning."""
        data = self._data
        size = len(data)
        if len(body) != size - _FRAME:
            raise ValueError("record body of %d bytes, %d expected" % (len(body), size - _FRAME))
        self.generation += 1
        data[:4] = self.magic
        struct.pack_into("<I", data, 4, self.generation)
        data[8 : size - 4] = body
        struct.pack_into("<I", data, size - 4, binascii.crc32(memoryview(data)[: size - 4]) & 0xFFFFFFFF)
        with open(self.paths[self.generation & 1], "wb") as stream:
            stream.write(data)
            stream.flush()
