"""The event journal on flash: append before the "taken" beep, read to publish, trim on the gateway's ack.

Records live in numbered segment files `NNNNNNNN.seg`, each opened by a 4-byte
magic and holding records framed as

    magic 0xA5 | type 1 | payload length u16 | seq u64 | crc32 u32 | payload

(little-endian; the CRC covers the 12 header bytes before it and the payload).
A torn tail after a power cut fails its CRC or is short: it is cut at boot and
never published. Whole segments are deleted once the gateway acked every record
in them. RAM use is a few fixed buffers, whatever the backlog.

Seqs stay contiguous and are never reused: the next seq is one past the last
record in the journal, or past the highest seq ever trimmed or acked, which the
meta file records before any segment is deleted. The meta file also reserves
seqs in blocks of 64 before they are used; when the journal turns out damaged
at boot (a segment missing or unreadable), numbering resumes past the
reservation: a visible gap, never a reused seq. The meta file is written in two
alternating copies (meta.a, meta.b) with a generation number (tcagent.copies),
so a cut during its write leaves the other copy intact.
"""

import binascii
import os
import struct

from tcagent import copies
from tcagent.codec.compat import const
from tcagent.codec.errors import AgentError

_SEGMENT_MAGIC = b"TCJ1"
_META_MAGIC = b"TCM1"
_RECORD_MAGIC = const(0xA5)
_TYPE_EVENT = const(1)
_HEADER = "<BBHQI"
HEADER_SIZE = const(16)
_META_BODY = "<IQQQ"  # boot, highest trimmed seq, highest acked seq, seqs reserved up to
_META_BODY_SIZE = const(28)
SEQ_RESERVATION = const(64)
_MAGIC_SIZE = const(4)


class JournalError(AgentError):
    """The journal's files cannot be trusted; the device must not start on them."""


class JournalFull(AgentError):
    """No room for another record until the gateway acks older ones."""


def _crc(header_view, payload):
    """CRC-32 of a record: `header_view` its first 12 header bytes (a view kept, so appending allocates nothing on
    a 64-bit build; on a 32-bit board a CRC of 2^30 or more is a long integer), then its payload."""
    return binascii.crc32(payload, binascii.crc32(header_view)) & 0xFFFFFFFF


class Journal:
    """An append-only, segment-rotated record store with one read cursor for the sender."""

    def __init__(self, folder, capacity_bytes, segment_bytes=16384, record_max=1400):
        if segment_bytes < 2 * (HEADER_SIZE + record_max) or capacity_bytes < 2 * segment_bytes:
            raise JournalError("journal wants segment_bytes >= 2 records and capacity >= 2 segments")
        self.folder = folder
        self.capacity = capacity_bytes
        self.segment_bytes = segment_bytes
        self.record_max = record_max
        self._header = bytearray(HEADER_SIZE)
        self._header_crc = memoryview(self._header)[:12]
        self._read_header = bytearray(HEADER_SIZE)
        self._read_header_crc = memoryview(self._read_header)[:12]
        self.bytes_written = 0  # record bytes appended since boot
        self.syncs = 0
        self.torn_cut = 0  # torn tails cut at boot
        self.corrupt = 0  # unreadable records skipped (flash damage), reported in status
        _makedirs(folder)
        self._meta = copies.Copies(folder + "/meta", _META_MAGIC, _META_BODY_SIZE)
        self._meta_body = bytearray(_META_BODY_SIZE)
        self._load_meta()
        self.boot += 1
        self._write_meta()
        self._open_segments()
        self._writer = open(self._path(self.last_segment), "ab")
        self._cursor_segment = 0
        self._cursor_file = None
        self._cursor_offset = 0
        self.rewind(self.acked_seq + 1)

    # ---- files ----------------------------------------------------------------

    def _path(self, index):
        return "%s/%08d.seg" % (self.folder, index)

    def _segments(self):
        indices = []
        for name in os.listdir(self.folder):
            if name.endswith(".seg") and len(name) == 12:
                indices.append(int(name[:8]))
        indices.sort()
        return indices

    def _open_segments(self):
        indices = self._segments()
        if not indices:
            indices = [1]
            with open(self._path(1), "wb") as fresh:
                fresh.write(_SEGMENT_MAGIC)
        self.first_segment = indices[0]
        self.last_segment = indices[-1]
        if indices[-1] - indices[0] + 1 != len(indices):
            self.corrupt += 1  # a segment vanished; the rest is still served
        self.used_bytes = 0
        for index in indices:
            self.used_bytes += os.stat(self._path(index))[6]
        tail = self._recover_tail(indices)
        self.last_seq = max(self.trimmed_seq, self.acked_seq, tail)
        if self.corrupt:
            self.last_seq = max(self.last_seq, self.reserved_seq)  # skip what may have been used

    def _recover_tail(self, indices):
        """Cut a torn tail off the last segment; return the last good seq in the journal (0 if none)."""
        for position in range(len(indices) - 1, -1, -1):
            path = self._path(indices[position])
            end, last_seq, size = self._scan(path)
            if position == len(indices) - 1 and (end < size or size < _MAGIC_SIZE):  # torn record or creation
                self._rewrite_prefix(path, end)
                self.used_bytes += os.stat(path)[6] - size
                self.torn_cut += 1
            if last_seq:
                return last_seq
        return 0

    def _scan(self, path):
        """(end of the last valid record, its seq, file size) for one segment."""
        size = os.stat(path)[6]
        last_seq = 0
        offset = _MAGIC_SIZE
        payload = bytearray(self.record_max)
        with open(path, "rb") as segment:
            if segment.read(_MAGIC_SIZE) != _SEGMENT_MAGIC:
                if size >= _MAGIC_SIZE:
                    self.corrupt += 1  # not a torn creation: the segment's content is lost
                return 0, 0, size
            while True:
                found = self._read_record(segment, payload)
                if found is None:
                    return offset, last_seq, size
                last_seq = found[0]
                offset += HEADER_SIZE + found[1]

    def _rewrite_prefix(self, path, end):
        """Keep the first `end` bytes of `path` (MicroPython files cannot truncate): copy, then rename."""
        temporary = path + ".tmp"
        chunk = bytearray(512)
        with open(path, "rb") as source, open(temporary, "wb") as target:
            left = end
            while left > 0:
                count = source.readinto(memoryview(chunk)[: min(left, len(chunk))])
                target.write(memoryview(chunk)[:count])
                left -= count
            if end < _MAGIC_SIZE:
                target.write(_SEGMENT_MAGIC[end:])
            target.flush()
        os.rename(temporary, path)

    def _read_record(self, stream, payload):
        """Read one record into `payload`; (seq, length), or None at the end or at a bad record."""
        header = self._read_header
        if stream.readinto(header) != HEADER_SIZE:
            return None
        magic, kind, length, seq, crc = struct.unpack(_HEADER, header)
        if magic != _RECORD_MAGIC or kind != _TYPE_EVENT or length > len(payload):
            return None
        view = memoryview(payload)[:length]
        if stream.readinto(view) != length or _crc(self._read_header_crc, view) != crc:
            return None
        return seq, length

    # ---- meta -------------------------------------------------------------------

    def _load_meta(self):
        body = self._meta.load()
        if body is None and self._meta.damaged and not self._first_write_torn():
            raise JournalError("both journal meta copies are damaged: seq continuity cannot be proven")
        if body is None:
            self.boot = self.trimmed_seq = self.acked_seq = self.reserved_seq = 0
        else:
            self.boot, self.trimmed_seq, self.acked_seq, self.reserved_seq = struct.unpack(_META_BODY, body)

    def _first_write_torn(self):
        """Whether the only meta copy is the journal's very first, torn by a power cut: one copy and no segment.

        The first meta write comes before the first segment is made, and the last segment is never deleted, so
        then nothing was ever journalled and starting afresh reuses no seq. (Found by power cuts in the RP2040
        model: a cut in a new board's first boot had left it refusing to start for ever.)
        """
        if self._meta.found == 1 and not self._segments():
            self.torn_cut += 1
            return True
        return False

    def _write_meta(self):
        struct.pack_into(_META_BODY, self._meta_body, 0, self.boot, self.trimmed_seq, self.acked_seq,
                         self.reserved_seq)
        self._meta.save(self._meta_body)

    # ---- writing ----------------------------------------------------------------

    def next_seq(self):
        return self.last_seq + 1

    def backlog(self):
        """Records written but not yet acked by the gateway."""
        return self.last_seq - self.acked_seq

    def append(self, seq, payload):
        """Write one record durably (flushed) or raise JournalFull; `seq` must be next_seq()."""
        if seq != self.last_seq + 1:
            raise ValueError("seq %d is not the next (%d)" % (seq, self.last_seq + 1))
        if len(payload) > self.record_max:
            raise ValueError("record of %d bytes over the %d limit" % (len(payload), self.record_max))
        size = HEADER_SIZE + len(payload)
        roll = self._writer.tell() + size > self.segment_bytes
        if self.used_bytes + size + (_MAGIC_SIZE if roll else 0) > self.capacity:
            raise JournalFull()
        if roll:
            self._roll()
        if seq > self.reserved_seq:
            self.reserved_seq = seq + SEQ_RESERVATION - 1
            self._write_meta()
        header = self._header
        struct.pack_into(_HEADER, header, 0, _RECORD_MAGIC, _TYPE_EVENT, len(payload), seq, 0)
        struct.pack_into("<I", header, 12, _crc(self._header_crc, payload))
        self._writer.write(header)
        self._writer.write(payload)
        self._writer.flush()
        self.last_seq = seq
        self.used_bytes += size
        self.bytes_written += size
        self.syncs += 1

    def _roll(self):
        self._writer.close()
        self.last_segment += 1
        self._writer = open(self._path(self.last_segment), "wb")
        self._writer.write(_SEGMENT_MAGIC)
        self.used_bytes += _MAGIC_SIZE

    def free_bytes(self):
        return self.capacity - self.used_bytes

    # ---- acks and trimming -------------------------------------------------------

    def ack(self, acked_seq):
        """Record the gateway's ack and delete the segments it fully covers."""
        if acked_seq <= self.acked_seq:
            return
        self.acked_seq = min(acked_seq, self.last_seq)
        deletable = self.first_segment
        trimmed = self.trimmed_seq
        while deletable < self.last_segment:
            following = deletable + 1
            following_first = self._first_seq(following)
            while following_first is None and following < self.last_segment:  # a segment lost to damage
                following += 1
                following_first = self._first_seq(following)
            if not following_first or following_first - 1 > self.acked_seq:
                break
            trimmed = following_first - 1
            deletable = following
        if deletable == self.first_segment:
            return
        self.trimmed_seq = trimmed
        self._write_meta()  # before deleting: the highest trimmed seq must survive the segments
        for index in range(self.first_segment, deletable):
            if self._cursor_file is not None and self._cursor_segment == index:
                self._close_cursor()
            try:
                self.used_bytes -= os.stat(self._path(index))[6]
                os.remove(self._path(index))
            except OSError:
                pass  # already gone (damage counted at boot)
        self.first_segment = deletable
        if self._cursor_segment < deletable:
            self.rewind(self.acked_seq + 1)

    def _first_seq(self, index):
        """The first seq in segment `index`: 0 when it has no record yet, None when the file is missing."""
        try:
            segment = open(self._path(index), "rb")
        except OSError:
            return None
        with segment:
            segment.seek(_MAGIC_SIZE)
            if segment.readinto(self._read_header) != HEADER_SIZE:
                return 0
            return struct.unpack_from("<Q", self._read_header, 4)[0]

    # ---- the sender's cursor -----------------------------------------------------

    def _close_cursor(self):
        if self._cursor_file is not None:
            self._cursor_file.close()
            self._cursor_file = None

    def rewind(self, seq):
        """Point the cursor at the first record with a seq of at least `seq`."""
        self._close_cursor()
        self._cursor_segment = self.first_segment
        self._cursor_offset = _MAGIC_SIZE
        self._skip_to = seq

    def read_next(self, payload):
        """Read the next record at the cursor into `payload`: (seq, length), or None when none is ready."""
        while True:
            if self._cursor_file is None:
                try:
                    self._cursor_file = open(self._path(self._cursor_segment), "rb")
                except OSError:
                    if self._cursor_segment >= self.last_segment:
                        return None
                    self._cursor_segment += 1  # lost to damage (counted at boot): go on with the next
                    self._cursor_offset = _MAGIC_SIZE
                    continue
                self._cursor_file.seek(self._cursor_offset)
            found = self._read_record(self._cursor_file, payload)
            if found is not None:
                self._cursor_offset += HEADER_SIZE + found[1]
                if found[0] >= self._skip_to:
                    return found
                continue
            if self._cursor_segment >= self.last_segment:
                self._close_cursor()  # the writer may add more: read again from the same offset later
                return None
            if self._cursor_offset + HEADER_SIZE <= os.stat(self._path(self._cursor_segment))[6]:
                self.corrupt += 1  # a bad record inside a full segment: skip the rest of it
            self._close_cursor()
            self._cursor_segment += 1
            self._cursor_offset = _MAGIC_SIZE

    def close(self):
        self._close_cursor()
        self._writer.close()


def _makedirs(folder):
    parts = folder.split("/")
    for count in range(1, len(parts) + 1):
        path = "/".join(parts[:count])
        if path:
            try:
                os.mkdir(path)
            except OSError:
                pass  # exists
