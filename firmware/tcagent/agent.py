"""The scanner agent: every framed line becomes a signed event on flash before the "taken" signal.

The network side (tcagent.link) publishes from the journal and feeds acks and
commands back here. Nothing in this module waits for the network.
"""

import asyncio

from tcagent import feedback, guard, intake, journal
from tcagent.codec import cbor, codes, cose, event, topics
from tcagent.codec.compat import const
from tcagent.compat import sleep_ms
from tcagent.link import LinkPort

VERSION = "0.3.0"
_RECENT = const(8)  # verdicts are signalled only for the last few scans, not for a drained backlog
_ALARM_FULL = const(1)
_ALARM_CLOCK = const(2)
_ALARM_COMMAND_MAC = const(8)
_ALARM_GUARD_LOST = const(16)
_LOG_MAX = const(120)  # characters of an error kept in a log line
_ANSWERS_MAX = const(4)  # command answers waiting for the link; more are dropped and counted
_REBOOT_GRACE_MS = const(3000)  # a reboot command waits this long at most for its answer to go out
COUNTERS = ("scans", "invalid", "repeats", "refused_full", "bytes_written", "syncs", "torn_cut", "corrupt",
            "resends", "commands_rejected", "bad_messages", "intake_errors", "answers_dropped")


class Agent:
    """State of one counter device; the hardware layer `hal` does the I/O."""

    def __init__(self, config, hal):
        self.config = config
        self.hal = hal
        self.device = config["device_id"]
        self.kid = self.device.encode()
        self.key = cose.MacKey(bytes.fromhex(config["key_hex"]))
        self.journal = journal.Journal(hal.data_dir + "/journal", config["journal_capacity"],
                                       config["journal_segment"], event.RECORD_MAX)
        self.framer = intake.LineFramer(config["suffix"].encode(), config["line_timeout_ms"])
        self.debouncer = intake.Debouncer(config["debounce_ms"])
        self.mode = config["mode"]
        self.ticket = ""
        self.split_qty = 0
        self.counts = {}
        for name in COUNTERS:
            self.counts[name] = 0
        self.alarm_full = False
        self.alarm_command_mac = False
        self.recent = [0] * _RECENT  # seqs of the last scans taken
        self.reboot_at = None  # ticks when a reboot command was accepted; the timer loop reboots
        self.wake = asyncio.Event()  # a new record to send, an ack, or a resend command
        self.ended = ""  # which of the agent's tasks ended, and how; "" while all run
        self._uptime_ms = 0
        self._last_tick = hal.ticks_ms()
        self.guard = guard.CommandGuard(hal.data_dir + "/command", self.journal.boot == 1,
                                        hal.data_dir + "/command.id")
        self.topics = topics.Topics(self.device)
        self.port = LinkPort(self.device, self.journal, self.topics, self.status, self.on_message,
                             self.wake)  # all the link touches; its answers at most _ANSWERS_MAX

    def uptime_ms(self):
        """Milliseconds since boot, immune to the wrap of the board's tick counter (called often enough)."""
        now = self.hal.ticks_ms()
        self._uptime_ms += self.hal.ticks_diff(now, self._last_tick)
        self._last_tick = now
        return self._uptime_ms

    # ---- the counter ---------------------------------------------------------

    def take(self, line):
        """Handle one framed line: a control barcode, a re-read to drop, or a scan to journal.

        Whatever the line holds, the scanner task lives on: a line that fails is counted
        (`intake_errors`) and signalled as an error (the scan was not taken). A flash failure
        (OSError) is not swallowed: the journal's writer may hold a torn record, and the restart
        (watchdog or service manager) cuts it at boot.
        """
        try:
            self._take(line)
        except OSError:
            raise
        except Exception as error:  # the intake boundary: one line must not stop the scanner
            self.counts["intake_errors"] += 1
            self.hal.signal(feedback.ERROR, "scan not taken")
            _log_bad("scanner", error)

    def _take(self, line):
        if self.debouncer.repeat(line, self.hal.ticks_ms(), self.hal.ticks_diff):
            self.counts["repeats"] += 1
            return
        control = intake.control(line)
        if control is not None:
            self._apply_control(control)
            return
        scan = codes.decode(line, self.config["gs1_form"], self.hal.today())
        seq = self.journal.next_seq()
        payload = event.encode(self.device, seq, self.journal.boot, self.hal.time_ms(), self.uptime_ms(),
                               self.hal.clock, self.mode, scan, self.ticket, self.split_qty)
        if len(payload) > event.EVENT_MAX:  # the gateway would refuse it for ever and hold the backlog behind it
            raise ValueError("event of %d bytes over the %d limit" % (len(payload), event.EVENT_MAX))
        try:
            self.journal.append(seq, cose.sign(self.key, payload, self.kid))
        except journal.JournalFull:
            self.counts["refused_full"] += 1
            self.alarm_full = True
            self.hal.signal(feedback.FULL, "refused")
            return
        self.split_qty = 0  # a split quantity applies to the next scan only
        self.counts["scans"] += 1
        self.recent[seq % _RECENT] = seq
        self.hal.signal(feedback.TAKEN, "seq=%d" % seq)
        if scan.err:
            self.counts["invalid"] += 1
            self.hal.signal(feedback.INVALID, "seq=%d err=%d" % (seq, scan.err))
        self.wake.set()

    def _apply_control(self, control):
        kind, value = control
        if kind == intake.CONTROL_MODE:
            self.mode = value
            self.hal.signal(feedback.MODE, str(value))
        elif kind == intake.CONTROL_TICKET:
            self.ticket = value
            self.hal.signal(feedback.CONTROL, "ticket=" + value)
        elif kind == intake.CONTROL_SPLIT_QTY:
            self.split_qty = value
            self.hal.signal(feedback.CONTROL, "split_qty=%d" % value)
        else:
            self.hal.signal(feedback.ERROR, value)

    async def scanner_loop(self):
        """Read the scan engine for ever; a vanished or failing device is reopened every few seconds.

        A read error is the device's (a UART or serial fault): reopen it. An error from take() is not caught
        here: a flash failure must end the task, and the supervisor reboots (see `run`).
        """
        hal = self.hal
        chunk = bytearray(128)
        while True:
            try:
                port = hal.open_scanner()
            except OSError as error:
                print("log scanner: cannot open: %s" % error)
                await asyncio.sleep(5)
                continue
            while True:
                try:
                    count = await port.read(chunk)
                except OSError as error:
                    print("log scanner: read failed: %s" % error)
                    count = 0
                if not count:
                    break
                self.framer.feed(memoryview(chunk)[:count], hal.ticks_ms(), self.take)
            print("log scanner: hung up, reopening")
            await asyncio.sleep(1)

    async def run(self, link):
        """The agent's life: the scanner, `link` (a tcagent.link.Link on `self.port`) and its status messages as
        tasks, supervised by the timer loop.

        A task that ends is not restarted in place: the scanner's only way out is a flash error (or a bug),
        after which the journal is sure again only once the boot check has cut a torn record. So the device
        reboots at once (machine.reset; exit status 75 under the service manager). The hardware watchdog is
        the second line: it is fed only while every task runs and the loop turns.
        """
        for name, work in (("scanner", self.scanner_loop()), ("link", link.run()), ("status", link.status_loop())):
            asyncio.create_task(self._watch(name, work))
        await self.timer_loop()

    async def _watch(self, name, work):
        try:
            await work
            how = "returned"
        except Exception as error:  # the supervisor's boundary: whatever ended the task is reported, then reboot
            how = "%s: %s" % (type(error).__name__, str(error)[:_LOG_MAX])
        self.ended = "%s task ended (%s)" % (name, how)

    async def timer_loop(self):
        """Every 50 ms: take a partial line after its timeout; feed the watchdog while every task runs.

        Once a task has ended: say so, stop feeding, reboot.
        """
        hal = self.hal
        if self.config["watchdog_ms"]:
            hal.watchdog_start(self.config["watchdog_ms"])
        while True:
            await sleep_ms(50)
            self.framer.poll(hal.ticks_ms(), self.take, hal.ticks_diff)
            self.uptime_ms()
            if self.ended:
                print("log agent: %s; rebooting" % self.ended)
                hal.reboot()  # the journal is left as a power cut would leave it: the boot check handles that
                return
            if self.reboot_at is not None and (
                    not self.port.answers or hal.ticks_diff(hal.ticks_ms(), self.reboot_at) > _REBOOT_GRACE_MS):
                print("log agent: rebooting on the gateway's command")
                self.journal.close()
                hal.reboot()
                return
            hal.watchdog_feed()

    # ---- from the gateway ----------------------------------------------------

    def on_message(self, topic, payload):
        """An ack or a command arrived (called by the MQTT client before it sends PUBACK).

        Never raises: a message of any shape that cannot be applied is counted (`bad_messages`)
        and dropped, so the MQTT reader goes on to the next one.
        """
        try:
            if topic == self.topics.ack:
                self._on_ack(payload)
            elif topic == self.topics.cmd:
                self._on_command(payload)
            else:
                raise ValueError("not a topic of this device")
        except Exception as error:  # the handler boundary: whatever the payload held, the reader lives on
            self.counts["bad_messages"] += 1
            _log_bad(topic, error)

    def _on_ack(self, payload):
        ack = cbor.loads(payload, max_size=2048, max_depth=4)
        if type(ack) is not dict or ack.get(0) != 1 or type(ack.get(0)) is not int:
            raise ValueError("ack is not a version 1 map")
        acked = cbor.uint(ack.get(1))
        verdicts = ack.get(2, [])
        if acked < 0 or type(verdicts) is not list:
            raise ValueError("ack needs a seq (key 1) and a verdict list (key 2)")
        for item in verdicts:  # checked whole before anything is applied
            if type(item) is not list or len(item) != 2 or cbor.uint(item[0]) < 0 or cbor.uint(item[1]) < 0:
                raise ValueError("ack verdict is not [seq, verdict]")
        if acked > self.journal.acked_seq:
            self.journal.ack(acked)
            self.wake.set()
            if self.alarm_full and self.journal.free_bytes() > self.journal.segment_bytes:
                self.alarm_full = False
        for seq, verdict in verdicts:
            if seq and self.recent[seq % _RECENT] == seq:
                name = feedback.VERDICTS[verdict] if verdict < len(feedback.VERDICTS) else feedback.ERROR
                self.hal.signal(name, "seq=%d" % seq)

    def _on_command(self, message):
        from tcagent import command  # commands are rare: their code is loaded at the first one, not at boot

        command.handle(self, message)

    def answer(self, signed):
        """Queue a signed command answer for the link; when _ANSWERS_MAX wait already, drop it and count it."""
        if len(self.port.answers) >= _ANSWERS_MAX:
            self.counts["answers_dropped"] += 1
            return
        self.port.answers.append(signed)
        self.wake.set()

    def reboot_soon(self):
        """Reboot once the answers are out (or after _REBOOT_GRACE_MS): the gateway learns the command applied."""
        self.reboot_at = self.hal.ticks_ms()

    # ---- to the gateway ------------------------------------------------------

    def alarms(self):
        bits = _ALARM_FULL if self.alarm_full else 0
        if self.hal.clock == event.CLOCK_UNSYNCED:
            bits |= _ALARM_CLOCK
        if self.alarm_command_mac:
            bits |= _ALARM_COMMAND_MAC
        if self.guard.lost:
            bits |= _ALARM_GUARD_LOST
        return bits

    def status(self):
        """The retained status message (docs/protocol.md, "Status")."""
        store = self.journal
        self.counts["bytes_written"] = store.bytes_written
        self.counts["syncs"] = store.syncs
        self.counts["torn_cut"] = store.torn_cut
        self.counts["corrupt"] = store.corrupt
        self.counts["resends"] = self.port.resends
        counters = {}
        for index in range(len(COUNTERS)):
            counters[index] = self.counts[COUNTERS[index]]
        return cbor.dumps({
            0: 1, 1: not self.ended, 2: VERSION, 3: self.uptime_ms() // 1000, 4: store.backlog(),
            5: self.hal.free_heap(), 6: store.acked_seq, 7: self.hal.clock, 8: store.last_seq, 9: store.boot,
            10: store.used_bytes, 11: store.capacity, 12: self.alarms(), 13: self.mode, 14: counters,
        })


def _log_bad(source, error):
    """One short log line for a refused input (the message of an exception can quote the whole input)."""
    print("log bad message on %s: %s %s" % (source, type(error).__name__, str(error)[:_LOG_MAX]))
