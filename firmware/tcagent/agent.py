"""The scanner agent: every framed line becomes a signed event on flash before the "taken" signal.

The network side (tcagent.link) publishes from the journal and feeds acks and
commands back here. Nothing in this module waits for the network.
"""

import asyncio

from tcagent import cbor, codes, cose, event, feedback, guard, intake, journal
from tcagent.compat import const

VERSION = "0.2.0"
RECORD_MAX = const(1280)  # docs/protocol.md: one COSE_Mac0 at most 1,280 bytes
EVENT_MAX = const(1024)  # docs/protocol.md: an event payload at most 1,024 bytes
_RECENT = const(8)  # verdicts are signalled only for the last few scans, not for a drained backlog
_ALARM_FULL = const(1)
_ALARM_CLOCK = const(2)
_ALARM_COMMAND_MAC = const(8)
_ALARM_GUARD_LOST = const(16)
_COMMAND_TIME = const(1)
_COMMAND_MODE = const(2)
_COMMAND_RESEND = const(3)
_COMMAND_CONFIG = const(4)
_COMMAND_REBOOT = const(5)
_COMMAND_KEYS = const(5)  # a command map has keys 0-4 only
# what the config command may change at run time, with the range it accepts
_RUNTIME_CONFIG = {"debounce_ms": (0, 60000), "line_timeout_ms": (0, 10000), "gs1_form": (0, 2),
                   "status_interval_s": (1, 86400), "ack_timeout_s": (1, 3600)}
_TIME_MIN_MS = const(1577836800000)  # 2020-01-01: a time command outside 2020-2099 is refused
_TIME_MAX_MS = const(4102444800000)
_UINT64_LIMIT = const(0x10000000000000000)
_LOG_MAX = const(120)  # characters of an error kept in a log line
COUNTERS = ("scans", "invalid", "repeats", "refused_full", "bytes_written", "syncs", "torn_cut", "corrupt",
            "resends", "commands_rejected", "bad_messages", "intake_errors")


class Agent:
    """State of one counter device; the hardware layer `hal` does the I/O."""

    def __init__(self, config, hal):
        self.config = config
        self.hal = hal
        self.device = config["device_id"]
        self.kid = self.device.encode()
        self.key = cose.MacKey(bytes.fromhex(config["key_hex"]))
        self.journal = journal.Journal(hal.data_dir + "/journal", config["journal_capacity"],
                                       config["journal_segment"], RECORD_MAX)
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
        self.resend_from = 0  # set by the gateway's resend command, consumed by the link
        self.wake = asyncio.Event()  # a new record to send, an ack, or a resend command
        self._uptime_ms = 0
        self._last_tick = hal.ticks_ms()
        self.guard = guard.CommandGuard(hal.data_dir + "/command", self.journal.boot == 1,
                                        hal.data_dir + "/command.id")
        self.topic_ev = "tc/v1/%s/ev" % self.device
        self.topic_ack = "tc/v1/%s/ack" % self.device
        self.topic_cmd = "tc/v1/%s/cmd" % self.device
        self.topic_status = "tc/v1/%s/status" % self.device

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
        if len(payload) > EVENT_MAX:  # the gateway would refuse it for ever and hold the backlog behind it
            raise ValueError("event of %d bytes over the %d limit" % (len(payload), EVENT_MAX))
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
        """Read the scan engine for ever; a vanished device is reopened every few seconds."""
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
                count = await port.read(chunk)
                if not count:
                    break
                self.framer.feed(memoryview(chunk)[:count], hal.ticks_ms(), self.take)
            print("log scanner: hung up, reopening")
            await asyncio.sleep(1)

    async def timer_loop(self, healthy):
        """Every 50 ms: take a partial line after its timeout; feed the watchdog while `healthy()`."""
        hal = self.hal
        if self.config["watchdog_ms"]:
            hal.watchdog_start(self.config["watchdog_ms"])
        while True:
            await asyncio.sleep_ms(50) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(0.05)
            self.framer.poll(hal.ticks_ms(), self.take, hal.ticks_diff)
            self.uptime_ms()
            if healthy():
                hal.watchdog_feed()

    # ---- from the gateway ----------------------------------------------------

    def on_message(self, topic, payload):
        """An ack or a command arrived (called by the MQTT client before it sends PUBACK).

        Never raises: a message of any shape that cannot be applied is counted (`bad_messages`)
        and dropped, so the MQTT reader goes on to the next one.
        """
        try:
            if topic == self.topic_ack:
                self._on_ack(payload)
            elif topic == self.topic_cmd:
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
        acked = ack.get(1, -1)
        verdicts = ack.get(2, [])
        if not _uint(acked) or type(verdicts) is not list:
            raise ValueError("ack needs a seq (key 1) and a verdict list (key 2)")
        for item in verdicts:  # checked whole before anything is applied
            if type(item) is not list or len(item) != 2 or not _uint(item[0]) or not _uint(item[1]):
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
        try:
            command_id, kind, argument = self._verified_command(message)
            clock_floor = self.hal.time_ms() if self.hal.clock == event.CLOCK_NTP else 0
            if not self.guard.accept(command_id, clock_floor):  # stored before the command is applied
                raise ValueError("command id %d refused (last %d%s)" % (
                    command_id, self.guard.last_id, ", guard lost" if self.guard.lost else ""))
        except Exception:
            self.counts["commands_rejected"] += 1
            raise
        if kind == _COMMAND_TIME:
            self.hal.set_time(argument)
        elif kind == _COMMAND_MODE:
            self.mode = argument
            self.hal.signal(feedback.MODE, str(argument))
        elif kind == _COMMAND_RESEND:
            self.resend_from = min(argument, self.journal.last_seq + 1)
            self.wake.set()
        elif kind == _COMMAND_CONFIG:
            self._apply_config(argument)
        else:
            self.journal.close()
            self.hal.reboot()
        print("log command %d type %d applied" % (command_id, kind))

    def _verified_command(self, message):
        """(id, type, argument) of a command whose MAC verifies and whose every field is in range."""
        try:
            payload = cose.verify(self.key, cose.parse(message, max_size=2048))
        except cose.CoseError:
            self.alarm_command_mac = True
            raise
        command = cbor.loads(payload, max_size=2048, max_depth=4)
        if type(command) is not dict or command.get(0) != 1 or type(command.get(0)) is not int:
            raise ValueError("command is not a version 1 map")
        for key in command:
            if type(key) is not int or not 0 <= key < _COMMAND_KEYS:
                raise ValueError("command has an unknown key")
        command_id = command.get(1, -1)
        kind = command.get(2, -1)
        argument = command.get(4)
        if not _uint(command_id) or not _uint(kind) or not _uint(command.get(3, -1)):
            raise ValueError("command needs an id, a type and an issue time")
        number = _number(argument)
        if kind == _COMMAND_TIME:
            good = _TIME_MIN_MS <= number < _TIME_MAX_MS
        elif kind == _COMMAND_MODE:
            good = 1 <= number <= 6
        elif kind == _COMMAND_RESEND:
            good = number > 0
        elif kind == _COMMAND_CONFIG:
            good = type(argument) is dict and _config_changes_valid(argument)
        else:
            good = kind == _COMMAND_REBOOT and argument is None
        if not good:
            raise ValueError("command type %d with an argument out of range" % kind)
        return command_id, kind, argument

    def _apply_config(self, changes):
        for name in changes:
            self.config[name] = changes[name]
        self.debouncer.window_ms = self.config["debounce_ms"]
        self.framer.timeout_ms = self.config["line_timeout_ms"]

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
        counters = {}
        for index in range(len(COUNTERS)):
            counters[index] = self.counts[COUNTERS[index]]
        return cbor.dumps({
            0: 1, 1: True, 2: VERSION, 3: self.uptime_ms() // 1000, 4: store.backlog(), 5: self.hal.free_heap(),
            6: store.acked_seq, 7: self.hal.clock, 8: store.last_seq, 9: store.boot, 10: store.used_bytes,
            11: store.capacity, 12: self.alarms(), 13: self.mode, 14: counters,
        })


def _uint(value):
    """True for a CBOR unsigned integer (bool is not one)."""
    return type(value) is int and 0 <= value < _UINT64_LIMIT


def _number(value):
    """`value` when it is a CBOR unsigned integer, else -1."""
    if type(value) is int and 0 <= value < _UINT64_LIMIT:
        return value
    return -1


def _config_changes_valid(changes):
    for name in changes:
        bounds = _RUNTIME_CONFIG.get(name) if type(name) is str else None
        value = _number(changes[name])
        if bounds is None or not bounds[0] <= value <= bounds[1]:
            return False
    return True


def _log_bad(source, error):
    """One short log line for a refused input (the message of an exception can quote the whole input)."""
    print("log bad message on %s: %s %s" % (source, type(error).__name__, str(error)[:_LOG_MAX]))
