"""python -m soaks.power_cuts: real power cuts on a Pico in the RP2040 model while the agent journals scans.

    python -m soaks.power_cuts --cuts 1000 [--workers 2] [--chain 25] [--seed N] [--keep DIR]

`kill -9` of a process is not a power cut: the kernel still writes what the process handed it. Here the CPU of
a plain Pico running today's agent (harness/pico_agent.py) stops at one instruction, the flash stays exactly as it
was (a page program or sector erase under way is left partly done, harness/rp2040/flash-chip.mjs), and a fresh
model boots from that flash.

Where the cut lands: each boot arms one cut at the Nth flash operation from power-on plus K ns of emulated time,
N uniform over the operations the boot and that boot's scans make, or (one boot in ten) the boot's first one,
so the cut falls in the boot's meta write, in an append's data and metadata programs, in littlefs's sector
erases; K log-uniform from 100 ns to 200 ms (inside a 0.4 ms page program, inside a 45 ms erase, or in the code
around them). Between 1 and 4 scans are typed into the scanner UART, each after the previous one was signalled
(console line and green LED); a cut not reached by then lands at a random moment within 100 ms (idle).

After every cut, on the host (the gateway's COSE_Mac0 verifier, not the firmware's journal code), and in the
next boot:
- the agent boots: its boot line comes, with a boot number above the last one;
- no torn record is accepted: every record in the journal has its CRC and a valid MAC, damage is only ever a
  torn tail of the last segment, and the booted agent's next seq is one past the last whole record;
- every scan the agent had signalled "taken" (the console line, or the green LED going on) is in the journal
  exactly once, under its seq, with its bytes;
- seqs stay contiguous from 1.
A chain boots `--chain` times from its own flash, then starts again from a fresh image (the journal of a Pico
without network is never trimmed). Exit status 1 when a check failed; the flash images before and after that
cut are kept in --keep (default: a temporary folder that is kept then).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.pico_agent import READY_LINE, Boot, JournalOnFlash, PicoAgent, agent_files, pico_config, read_journal
from harness.pico_model import ModelError

__all__ = ["Summary", "main", "run_cuts"]

KEY = bytes(range(32))
DEVICE = "pico-cuts"
SCANS_PER_BOOT = (1, 4)
BOOT_OPERATIONS = 4
"""About how many flash operations a boot makes (the journal meta; more when it repairs a torn tail)."""
OPERATIONS_PER_SCAN = 10
"""About how many a scan's append makes (measured: 4-11 programs and erases; littlefs copies the partly filled
4 KB block, erases, commits)."""
BOOT_SHARE = 0.1
"""Boots whose cut is counted from their first flash operation."""
CUT_NS = (2.0, 8.3)
"""log10 of the cut's offset from its flash operation's start, in ns: 100 ns to 200 ms."""
IDLE_CUT_NS = 100_000_000
CONFIG = {"journal_segment": 4096, "journal_capacity": 131072}
"""Small segments, so that chains roll segments and cross seq reservations (every 64) often."""
LINE_TIMEOUT_S = 120


@dataclass
class Summary:
    """Counts over every cut, as printed at the end."""

    cuts: int = 0
    boots: int = 0
    where: Counter[str] = field(default_factory=Counter)
    """When the cut came: during the boot, while a scan was being taken, after the scans (idle)."""
    flash: Counter[str] = field(default_factory=Counter)
    """What the flash chip was doing: in an erase, in a page program, or neither (between operations)."""
    taken: int = 0
    """Scans signalled "taken" before their cut (each checked in the journal)."""
    unsignalled_kept: int = 0
    """Scans whose record was whole on flash but whose signal had not come out when the power went."""
    torn_tails: int = 0
    """Cuts that left a torn record at the journal's end (the next boot must cut it off)."""
    records: int = 0
    """Records checked, summed over all cuts."""
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.cuts} cuts, {len(self.failures)} failed; where: {dict(sorted(self.where.items()))}; flash: "
                f"{dict(sorted(self.flash.items()))}; {self.taken} scans signalled taken, all in the journal once;"
                f" {self.unsignalled_kept} kept unsignalled; {self.torn_tails} torn tails left by a cut;"
                f" {self.records} records checked; {self.boots} boots")


class _Chain:
    """One Pico's life through `length` cuts, from a fresh image: everything taken so far, and what is next."""

    def __init__(self, work: Path, files: dict[str, bytes], rng: random.Random, serials: _Serials) -> None:
        self.work = work
        self.files = files
        self.rng = rng
        self.serials = serials
        self.flash: Path | None = None  # None: the first boot, from files
        self.taken: dict[int, bytes] = {}  # seq -> the scan's bytes, for every scan signalled taken
        self.expected_next = 1
        self.last_boot = 0

    def cut_once(self, index: int, summary: Summary, lock: threading.Lock) -> str | None:
        """One boot, scans, a cut, the checks; a failure in words, or None."""
        rng = self.rng
        scans = [self.serials.next() for _ in range(rng.randint(*SCANS_PER_BOOT))]
        if rng.random() < BOOT_SHARE:
            operation = 1  # the boot's first write: the journal's meta (or its torn-tail repair)
        else:
            operation = rng.randint(1, BOOT_OPERATIONS + OPERATIONS_PER_SCAN * len(scans))
        offset_ns = int(10 ** rng.uniform(*CUT_NS))
        agent = PicoAgent(self.work, files=self.files if self.flash is None else None, flash=self.flash)
        where = "boot"
        signalled: dict[int, bytes] = {}
        try:
            agent.model.cut_at(op=operation, ns=offset_ns, seed=rng.getrandbits(31))
            boot = _boot_or_cut(agent)
            if boot is not None:
                with lock:
                    summary.boots += 1
                if boot.boot <= self.last_boot:
                    return f"boot number {boot.boot} after boot {self.last_boot}"
                self.last_boot = boot.boot
                if boot.next_seq != self.expected_next:
                    return (f"the agent booted with next seq {boot.next_seq}, but the last whole record on flash is"
                            f" {self.expected_next - 1}: it accepted a torn record or lost a whole one")
                where = "scan"
                for code in scans:
                    sent_ns = agent.model.now_ns()
                    agent.scan(code)
                    seq = _taken_or_cut(agent)
                    if agent.model.lost:
                        return f"scan bytes fell on a pin no UART listened to: {agent.model.lost}"
                    lit = _green_or_cut(agent, sent_ns)
                    if seq is None and lit:
                        seq = -len(signalled) - 1  # the LED said taken, its console line did not come out
                    if seq is not None:
                        signalled[seq] = code
                    if agent.model.cut is not None:
                        break
                else:
                    where = "idle"
                    agent.model.cut_at(op=0, ns=rng.randrange(IDLE_CUT_NS), seed=rng.getrandbits(31))
            cut = agent.model.wait_cut(LINE_TIMEOUT_S)
            saved = self.work / f"flash-{index % 2}.bin"
            agent.model.save_flash(saved)
        finally:
            agent.stop()
        journal = read_journal(saved.read_bytes(), DEVICE, KEY)
        failure = self._check(journal, signalled)
        with lock:
            summary.cuts += 1
            summary.where[where] += 1
            summary.flash[str(cut.during["kind"]) if cut.during else "between"] += 1
            summary.taken += len(signalled)
            summary.torn_tails += journal.torn_tail > 0
            summary.records += len(journal.records)
            summary.unsignalled_kept += sum(1 for record in journal.records if record.event.raw in scans
                                            and record.event.raw not in signalled.values())
        for seq, code in signalled.items():
            if seq > 0:
                self.taken[seq] = code
        if failure is None:
            self.flash = saved
            self.expected_next = journal.seqs()[-1] + 1 if journal.records else 1
        return failure

    def _check(self, journal: JournalOnFlash, signalled: dict[int, bytes]) -> str | None:
        if journal.bad:
            return "damaged journal: " + "; ".join(journal.bad)
        seqs = journal.seqs()
        if seqs != list(range(1, len(seqs) + 1)):
            return f"seqs are not contiguous from 1: {seqs[:5]}...{seqs[-5:]}"
        raws = Counter(record.event.raw for record in journal.records)
        by_seq = {record.seq: record.event.raw for record in journal.records}
        for seq, code in {**self.taken, **signalled}.items():
            how = f"signalled taken (seq {seq})" if seq > 0 else "signalled taken by the LED only"
            if seq > 0 and by_seq.get(seq) != code:
                return f"seq {seq}, signalled taken with {code!r}, is {by_seq.get(seq)!r} in the journal"
            if raws[code] != 1:
                return f"{code!r}, {how}, is {raws[code]} times in the journal"
        return None


class _Serials:
    """Unique 20-digit codes (and now and then a GS1 DataMatrix line, a longer record), shared by the workers."""

    def __init__(self, rng: random.Random) -> None:
        self.count = 0
        self.rng = rng
        self.lock = threading.Lock()

    def next(self) -> bytes:
        with self.lock:
            self.count += 1
            count = self.count
            gs1 = self.rng.random() < 0.25
        if gs1:
            return b"]d2010690123456789217261200102AB\x1d21S%09d" % count
        return b"8123456%09d%04d" % (count, count % 10000)


def _boot_or_cut(agent: PicoAgent) -> Boot | None:
    """The boot line once the agent's tasks run (the scanner UART is open), or None when the cut came first."""
    boot = None
    while True:
        line = _line_or_cut(agent)
        if line is None:
            return None
        if boot is None:
            boot = agent.boot_line(line)
        elif line.startswith(READY_LINE):
            return boot


def _taken_or_cut(agent: PicoAgent) -> int | None:
    """The seq of the next "signal taken", or None when the cut came first."""
    while True:
        line = _line_or_cut(agent)
        if line is None:
            return None
        seq = agent.taken_seq(line)
        if seq is not None:
            return seq


def _green_or_cut(agent: PicoAgent, after_ns: int) -> bool:
    """Whether the green LED ("taken") went on after `after_ns`, waiting for it until the cut."""
    model = agent.model
    model.wait_until("the green LED or the cut",
                     lambda: agent.led_rises("green", after_ns) > 0 or model.cut is not None, LINE_TIMEOUT_S)
    return agent.led_rises("green", after_ns) > 0


def _line_or_cut(agent: PicoAgent) -> bytes | None:
    model = agent.model
    model.wait_until("a console line or the cut", lambda: b"\n" in model.console() or model.cut is not None,
                     LINE_TIMEOUT_S)
    if b"\n" in model.console():
        return agent.read_line(1)
    return None


def run_cuts(cuts: int, *, workers: int = 2, chain: int = 25, seed: int | None = None, keep: Path | None = None,
             progress: Callable[[str], None] = print) -> Summary:
    """Run `cuts` power cuts in `workers` parallel models, `chain` per fresh image; the counts."""
    seed = random.randrange(2**31) if seed is None else seed
    progress(f"power cuts: {cuts} in {workers} models on {os.cpu_count()} cores, seed {seed}")
    work = Path(tempfile.mkdtemp(prefix="power-cuts-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    files = agent_files(work, pico_config(DEVICE, KEY, **CONFIG))
    summary = Summary()
    lock = threading.Lock()
    master = random.Random(seed)
    serials = _Serials(random.Random(master.getrandbits(32)))
    left = {"cuts": cuts}
    started = time.monotonic()

    def worker(number: int) -> None:
        rng = random.Random(master.getrandbits(32) + number)
        folder = work / f"worker-{number}"
        folder.mkdir(exist_ok=True)
        current = _Chain(folder, files, rng, serials)
        done = 0
        while True:
            with lock:
                if left["cuts"] <= 0 or summary.failures:
                    return
                left["cuts"] -= 1
            if done and done % chain == 0:
                current = _Chain(folder, files, rng, serials)
            try:
                failure = current.cut_once(done, summary, lock)
            except ModelError as error:
                failure = f"the model failed: {error}"
            except Exception:  # the soak's boundary: whatever broke is a failure with its traceback, not a hang
                failure = "the check raised:\n" + traceback.format_exc()
            done += 1
            with lock:
                if failure is not None:
                    kept = work / f"failure-{len(summary.failures) + 1}"
                    shutil.copytree(folder, kept, dirs_exist_ok=True)
                    summary.failures.append(f"worker {number}, cut {done}: {failure} (flash images in {kept})")
                    progress(summary.failures[-1])
                elif summary.cuts % 10 == 0 or summary.cuts == cuts:
                    progress(f"  {summary.cuts}/{cuts} cuts, {time.monotonic() - started:.0f} s: {summary.line()}")

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary.seconds = time.monotonic() - started
    if not summary.failures and keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soaks.power_cuts", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--cuts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="models run side by side (default: 2, or 1 on one core)")
    parser.add_argument("--chain", type=int, default=25, help="cuts per fresh flash image")
    parser.add_argument("--seed", type=int, help="the random choices' seed (printed; default: a random one)")
    parser.add_argument("--keep", type=Path, help="keep the flash images here (default: only a failure's)")
    options = parser.parse_args(argv)
    summary = run_cuts(options.cuts, workers=options.workers, chain=options.chain, seed=options.seed,
                       keep=options.keep, progress=lambda text: print(text, flush=True))
    print(f"done in {summary.seconds:.0f} s ({summary.seconds / max(summary.cuts, 1):.1f} s per cut): {summary.line()}")
    for failure in summary.failures:
        print("FAILED: " + failure)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
