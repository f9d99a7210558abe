"""Benchmark: bytes littlefs programs to flash per journalled event (write amplification), and µs per scan
through decode, event CBOR, COSE_Mac0 and the journal append with its sync.

Runs on the micropython executable (and on a board, where it uses a RAM block
device too, so the real flash is not worn): formats littlefs v2 on a counting
block device of 4 KiB blocks, appends real signed events to the journal with a
sync each, as the agent does, and prints one JSON line.
"""

import json
import sys
import time

import vfs

from tcagent import journal
from tcagent.codec import codes, cose, event

BLOCK = 4096


class CountingFlash:
    """A RAM block device that counts what littlefs programs and erases."""

    def __init__(self, blocks):
        self.data = bytearray(blocks * BLOCK)
        self.blocks = blocks
        self.programmed = 0
        self.erased = 0

    def readblocks(self, block, buffer, offset=0):
        start = block * BLOCK + offset
        buffer[:] = self.data[start : start + len(buffer)]

    def writeblocks(self, block, buffer, offset=None):
        start = block * BLOCK + (offset or 0)
        self.data[start : start + len(buffer)] = buffer
        self.programmed += len(buffer)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        if op == 6:
            self.erased += 1
            return 0
        return None


def main(events=400):
    flash = CountingFlash(256)
    vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), "/flash")
    key = cose.MacKey(bytes(32))
    store = journal.Journal("/flash/journal", 512 * 1024, 16384, 1280)
    flash.programmed = flash.erased = 0
    record_bytes = 0
    scan_us = append_us = 0
    for number in range(events):
        line = ("]d20106901234567892172612001020AB\x1d21S%08d" % number).encode()
        start = time.ticks_us()
        seq = store.next_seq()
        scan = codes.decode(line)
        message = cose.sign(key, event.encode("dev-0001", seq, 1, 1767225600000, number, 1, 1, scan, "T-1", 0), b"d")
        appending = time.ticks_us()
        store.append(seq, message)
        done = time.ticks_us()
        scan_us += time.ticks_diff(done, start)
        append_us += time.ticks_diff(done, appending)
        record_bytes += journal.HEADER_SIZE + len(message)
    store.close()
    vfs.umount("/flash")
    print(json.dumps({
        "events": events,
        "record_bytes_per_event": record_bytes // events,
        "flash_bytes_programmed_per_event": flash.programmed // events,
        "write_amplification": round(flash.programmed / record_bytes, 2),
        "block_erases_per_event": round(flash.erased / events, 3),
        "us_per_scan_to_journal": round(scan_us / events, 1),
        "us_journal_append": round(append_us / events, 1),
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
