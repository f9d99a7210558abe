"""The firmware entry points the tests drive, with plain inputs and outputs (runs on both Pythons)."""

from tcagent import config, intake, journal, mqtt
from tcagent.codec import cbor, codes, cose, event, gs1, reasons, topics

SCAN_FIELDS = ("raw", "aim", "kind", "code", "pid", "serial", "lot", "expiry", "made", "err", "detail", "elements")
TEXT_FIELDS = ("aim", "code", "pid", "serial", "lot", "expiry", "made")


def scan(line, gs1_form=codes.GS1_FULL, today=""):
    decoded = codes.decode(line, gs1_form, today)
    result = {}
    for name in SCAN_FIELDS:
        result[name] = getattr(decoded, name)
    for name in TEXT_FIELDS:  # ASCII bytes on the device; text in the vectors
        result[name] = result[name].decode()
    result["elements"] = [[ai.decode(), value.decode()] for ai, value in decoded.elements]
    result["kind_name"] = codes.KIND_NAMES[decoded.kind]
    result["err_name"] = reasons.NAMES[decoded.err]
    return result


def cbor_loads(data, max_size=cbor.DEFAULT_MAX_SIZE, max_depth=cbor.DEFAULT_MAX_DEPTH, indefinite=False,
               deterministic=False):
    return cbor.loads(data, max_size, max_depth, indefinite, deterministic)


def cbor_dumps(value):
    return cbor.dumps(value)


def cbor_reencode(data, indefinite=False):
    """Decode with the firmware, encode again deterministically."""
    return cbor.dumps(cbor.loads(data, indefinite=indefinite))


def mac0_sign(key, payload, kid):
    return cose.sign(cose.MacKey(key), payload, kid)


def mac0_verify(key, message):
    return cose.verify(cose.MacKey(key), cose.parse(message))


def mac0_kid(message):
    return cose.parse(message).kid


def event_encode(device, seq, boot, time_ms, uptime_ms, clock, op, line, ticket="", split_qty=0, today=""):
    decoded = codes.decode(line, codes.GS1_FULL, today)
    return event.encode(device, seq, boot, time_ms, uptime_ms, clock, op, decoded, ticket, split_qty)


def signed_event(key, device, seq, boot, time_ms, uptime_ms, clock, op, line, ticket="", split_qty=0):
    payload = event_encode(device, seq, boot, time_ms, uptime_ms, clock, op, line, ticket, split_qty)
    return cose.sign(cose.MacKey(key), payload, device.encode())


def gs1_parse(text, bracketed=False):
    elements = (gs1.parse_bracketed if bracketed else gs1.parse)(text.encode())
    return [[ai.decode(), value.decode()] for ai, value in elements]


def gs1_table():
    """Every AI the parser knows (the 4-digit decimal families expanded) with its length and flags."""
    ais = [ai.decode() for ai in gs1._TABLE]
    for family in gs1._DECIMAL_AIS + tuple(gs1._AMOUNT_AIS):
        family = family.decode()
        ais.extend(family + str(digit) for digit in range(10) if gs1.lookup((family + str(digit)).encode(), 0))
    ais.extend(str(number) for number in range(91, 100))
    table = []
    for ai in ais:
        found = gs1.lookup(ai.encode(), 0)
        table.append([ai, found[1], found[2] & gs1.FIXED != 0, found[2] & gs1.NUMERIC != 0])
    return table


def which_files(module_name):
    """The file a module was loaded from (to prove a test ran the compiled .mpy)."""
    module = __import__(module_name, None, None, ["__name__"])
    return module.__file__


def _payload(seq, size):
    text = ("%d:" % seq).encode()
    return text + bytes([seq & 0xFF]) * (size - len(text))


def journal_run(folder, capacity, segment_bytes, ops, record_max=400):
    """Open a journal, apply `ops`, report what happened and its state, close it.

    ops: ["append", count, size] | ["ack", seq] | ["read", count] | ["rewind", seq]
    """
    store = journal.Journal(folder, capacity, segment_bytes, record_max)
    trace = []
    buffer = bytearray(record_max)
    for op in ops:
        if op[0] == "append":
            for _ in range(op[1]):
                seq = store.next_seq()
                try:
                    store.append(seq, _payload(seq, op[2]))
                    trace.append(["taken", seq])
                except journal.JournalFull:
                    trace.append(["full", seq])
        elif op[0] == "ack":
            store.ack(op[1])
        elif op[0] == "rewind":
            store.rewind(op[1])
        elif op[0] == "read":
            for _ in range(op[1]):
                found = store.read_next(buffer)
                if found is None:
                    trace.append(["end"])
                    break
                seq, length = found
                intact = bytes(buffer[:length]) == _payload(seq, length)
                trace.append(["read", seq, length, intact])
    state = {}
    for name in ("boot", "last_seq", "acked_seq", "trimmed_seq", "used_bytes", "first_segment", "last_segment",
                 "torn_cut", "corrupt", "bytes_written", "syncs"):
        state[name] = getattr(store, name)
    state["backlog"] = store.backlog()
    store.close()
    return {"trace": trace, "state": state}


def mqtt_echo(port, client_id, count, payload_size):
    """Connect, subscribe to our own topic, publish `count` QoS 1 messages, return what came back."""
    import asyncio

    received = []
    pubacks = []

    async def scenario():
        own = topics.Topics(client_id)
        client = mqtt.Client(client_id, keepalive_s=5, window=3, will=(own.status, b"\xa2\x00\x01\x01\xf4", True))
        client.on_message = lambda topic, payload: received.append([topic, bytes(payload)])
        client.on_puback = pubacks.append
        await client.connect("127.0.0.1", port)
        reader = asyncio.create_task(client.run())
        await client.subscribe(own.ack)
        for number in range(count):
            await client.publish(own.ack, _payload(number, payload_size), puback_token=number)
        for _ in range(200):
            if len(received) >= count and len(pubacks) >= count:
                break
            await asyncio.sleep(0.02)
        await client.disconnect()
        try:
            await reader
        except (mqtt.MQTTError, asyncio.CancelledError):
            pass  # the reader ends with the connection

    asyncio.run(scenario())
    return {"received": received, "pubacks": pubacks}


def device_topics(device):
    """The topics of `device` by name."""
    own = topics.Topics(device)
    return {"ev": own.ev, "status": own.status, "res": own.res, "ack": own.ack, "cmd": own.cmd}


def mqtt_refused(port, user, password):
    import asyncio

    async def scenario():
        await mqtt.Client("x", user=user, password=password).connect("127.0.0.1", port)

    asyncio.run(scenario())


def mqtt_vanish(port, client_id):
    """Connect with a Last Will, then drop the connection without DISCONNECT."""
    import asyncio

    async def scenario():
        will = (topics.Topics(client_id).status, b"\xa2\x00\x01\x01\xf4", True)
        client = mqtt.Client(client_id, keepalive_s=5, will=will)
        await client.connect("127.0.0.1", port)
        client.close()

    asyncio.run(scenario())


def config_check(values, board="unix"):
    checked = config.check(values, board)
    result = {}
    for name in ("device_id", "broker_port", "uart", "watchdog_ms", "ntp_host", "clock_floor_s", "pins", "ppp"):
        result[name] = checked[name]
    return result


def frame(chunks, suffix="\r\n", timeout_ms=200, debounce_ms=0):
    """Feed (bytes, at_ms) chunks through the framer (polling after each) and the debouncer; return the lines."""
    framer = intake.LineFramer(suffix.encode(), timeout_ms)
    debouncer = intake.Debouncer(debounce_ms)
    lines = []

    def emit(line):
        if not debouncer.repeat(line, emit_time[0], lambda end, start: end - start):
            lines.append(line)

    emit_time = [0]
    for data, at_ms in chunks:
        emit_time[0] = at_ms
        framer.feed(data, at_ms, emit)
        framer.poll(at_ms, emit, lambda end, start: end - start)
    return {"lines": lines, "overlong": framer.overlong, "timeouts": framer.timeouts, "dropped": debouncer.dropped}


def control_barcode(line):
    return intake.control(line)


def mqtt_interleave():
    """Publish while another task sends a PUBACK; return the bytes in the order they were written."""
    import asyncio

    async def scenario():
        client = mqtt.Client("x")
        client._writer = _Recorder()
        client.connected = True
        publishing = asyncio.create_task(client.publish("t", b"P" * 10))
        await asyncio.sleep(0)
        await client._send(0x40, b"\x00\x08")
        await publishing
        return bytes(client._writer.data)

    return asyncio.run(scenario())


class FakeHal:
    """The hardware layer the agent sees in these tests: a settable clock, signals kept in a list."""

    name = "test"

    def __init__(self, data_dir, clock, now_ms):
        self.data_dir = data_dir
        self.clock = clock
        self.now_ms = now_ms
        self.signals = []
        self.rebooted = False

    def ticks_ms(self):
        return 0

    def ticks_diff(self, end, start):
        return end - start

    def time_ms(self):
        return self.now_ms if self.clock else 0

    def set_time(self, epoch_ms):
        self.now_ms = epoch_ms
        self.clock = 2

    def today(self):
        return ""

    def signal(self, name, detail=""):
        self.signals.append(name + " " + detail if detail else name)

    def free_heap(self):
        return 0

    def reboot(self):
        self.rebooted = True


def _agent(folder, key, clock, now_ms):
    from tcagent import agent

    settings = config.check({"device_id": "dev-0001", "key_hex": bytes(key).hex(), "broker_host": "x",
                             "data_dir": folder, "journal_capacity": 16384, "journal_segment": 4096})
    return agent.Agent(settings, FakeHal(folder, clock, now_ms))


def _agent_state(device, escaped):
    from tcagent import agent

    counts = {}
    for name in agent.COUNTERS:
        counts[name] = device.counts[name]
    settable = {}
    for name in ("debounce_ms", "line_timeout_ms", "gs1_form", "status_interval_s", "ack_timeout_s"):
        settable[name] = device.config[name]
    state = {"counts": counts, "escaped": escaped, "acked_seq": device.journal.acked_seq,
             "last_seq": device.journal.last_seq, "trimmed_seq": device.journal.trimmed_seq,
             "first_segment": device.journal.first_segment, "mode": device.mode, "clock": device.hal.clock,
             "time_ms": device.hal.time_ms(), "last_command_id": device.guard.last_id, "guard_lost": device.guard.lost,
             "alarms": device.alarms(), "signals": device.hal.signals, "resend_from": device.port.resend_from,
             "config": settable, "rebooted": device.hal.rebooted, "answers": device.port.answers,
             "reboot_pending": device.reboot_at is not None}
    device.journal.close()
    return state


def _scan_lines(device, count):
    for number in range(count):
        device.take(("8123456%013d" % (device.journal.last_seq + number + 1)).encode())


def agent_feed(folder, key, scans, messages, clock=1, now_ms=1767225600000):
    """Boot an agent on `folder`, take `scans` distinct scans, hand it `messages` ([topic, payload]:
    topic "ack", "cmd" or a whole topic; payload bytes), and report its state.

    An exception that escapes a handler is recorded in "escaped" (it would kill the MQTT reader).
    """
    device = _agent(folder, key, clock, now_ms)
    _scan_lines(device, scans)
    escaped = []
    for topic, payload in messages:
        if topic in ("ack", "cmd"):
            topic = "tc/v1/dev-0001/" + topic
        try:
            device.on_message(topic, payload)
        except Exception as error:  # what the handler let through is the finding
            escaped.append(type(error).__name__)
    return _agent_state(device, escaped)


def agent_lines(folder, key, lines):
    """Hand framed scanner lines straight to the agent's intake; report its state."""
    device = _agent(folder, key, 1, 1767225600000)
    escaped = []
    for line in lines:
        try:
            device.take(line)
        except Exception as error:
            escaped.append(type(error).__name__)
    return _agent_state(device, escaped)


def _publish_packet(topic, pid, payload):
    body = bytearray()
    mqtt._string(body, topic)
    body.extend(bytes([pid >> 8, pid & 0xFF]))
    body.extend(payload)
    packet = bytearray(b"\x32")
    mqtt._varint(packet, len(body))
    packet.extend(body)
    return packet


class _Feed:
    """The broker's side of a connection: these bytes, then silence (a live but quiet connection)."""

    def __init__(self, data):
        import asyncio

        self.data = data
        self.position = 0
        self.never = asyncio.Event()

    async def readexactly(self, count):
        if self.position + count > len(self.data):
            await self.never.wait()
        chunk = bytes(self.data[self.position : self.position + count])
        self.position += count
        return chunk


class _Recorder:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data.extend(data)

    async def drain(self):
        import asyncio

        await asyncio.sleep(0)

    def close(self):
        pass


async def _serve_stream(client, stream):
    """Run `client`'s reader task over `stream` for a moment: (still running, name of what ended it)."""
    import asyncio

    client._reader = _Feed(stream)
    client._writer = _Recorder()
    client.connected = True
    reader = asyncio.create_task(client.run())
    for _ in range(20):
        await asyncio.sleep(0.01)
    if not reader.done():
        reader.cancel()
        return True, ""
    try:
        await reader
    except Exception as error:  # what ended the reader is the finding
        return False, type(error).__name__
    return False, ""


def mqtt_malformed(packet):
    """Feed one inbound packet to a connected client; (reader still running, what ended it, connected)."""
    import asyncio

    async def scenario():
        client = mqtt.Client("x", keepalive_s=30)
        client.on_message = lambda topic, payload: None
        running, ended = await _serve_stream(client, packet)
        return [running, ended, client.connected]

    return asyncio.run(scenario())


def agent_reader(folder, key, scans, payloads):
    """The agent behind the real MQTT reader task: `payloads` arrive as QoS 1 PUBLISH packets on the ack
    topic, then the connection stays quiet. Reports whether the reader still runs, the PUBACKs it wrote,
    and the agent's state."""
    import asyncio

    device = _agent(folder, key, 1, 1767225600000)
    _scan_lines(device, scans)
    stream = bytearray()
    for number in range(len(payloads)):
        stream.extend(_publish_packet(device.topics.ack, number + 1, payloads[number]))

    async def scenario():
        client = mqtt.Client(device.device, keepalive_s=30)
        client.on_message = device.on_message
        running, ended = await _serve_stream(client, stream)
        written = bytes(client._writer.data)
        pubacks = []
        position = 0
        while position + 4 <= len(written) and written[position] == 0x40:
            pubacks.append(written[position + 2] << 8 | written[position + 3])
            position += 4
        return running, ended, pubacks, client.connected

    running, ended, pubacks, connected = asyncio.run(scenario())
    state = _agent_state(device, [])
    state["reader_running"] = running
    state["reader_ended"] = ended
    state["pubacks"] = pubacks
    state["connected"] = connected
    return state


def guard_run(folder, new_device, ops):
    """Open the command guard in `folder`, apply ops ["accept", id, floor_ms], report the answers and state."""
    from tcagent import guard

    store = guard.CommandGuard(folder + "/command", new_device, folder + "/command.id")
    answers = []
    for op in ops:
        answers.append(store.accept(op[1], op[2]))
    return {"answers": answers, "last_id": store.last_id, "lost": store.lost}


from fwboard import board_clock, board_import, board_run, board_wifi  # noqa: E402,F401  (the board layer's calls)


def link_deliver(broker_port, folder, key, count, device="link-0001"):
    """The link on a LinkPort of its own, no agent: a real journal holding `count` signed events, a status message
    and a handler that applies acks (the test plays the gateway on the broker). Runs the link until every event is
    acked (at most 10 s); reports the acked seq, the topics the handler saw, the status messages asked for, the
    connects and the signals."""
    import asyncio

    from tcagent import hal, link

    settings = config.check({"device_id": device, "key_hex": bytes(key).hex(), "broker_host": "127.0.0.1",
                             "broker_port": broker_port, "data_dir": folder, "journal_capacity": 16384,
                             "journal_segment": 4096, "batch_max": 3})
    store = journal.Journal(folder + "/journal", 16384, 4096, event.RECORD_MAX)
    for _ in range(count):
        seq = store.next_seq()
        store.append(seq, signed_event(key, device, seq, store.boot, 1767225600000 + seq, seq, 1, 1,
                                       ("8123456%013d" % seq).encode()))
    handled = []
    statuses = []
    signals = []

    def status():
        statuses.append(store.backlog())
        return cbor.dumps({0: 1, 1: True, 4: store.backlog()})

    def on_message(topic, payload):
        handled.append(topic)
        if topic == port.topics.ack:
            acked = cbor.loads(payload)[1]
            if acked > store.acked_seq:
                store.ack(acked)
                port.wake.set()

    port = link.LinkPort(device, store, topics.Topics(device), status, on_message, asyncio.Event())
    board = hal.load(settings)
    board.signal = lambda name, detail="": signals.append(name)
    network = link.Link(port, board, settings)

    async def scenario():
        task = asyncio.create_task(network.run())
        for _ in range(500):
            if store.acked_seq >= count:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(scenario())
    result = {"acked_seq": store.acked_seq, "handled": handled, "statuses": statuses, "connects": network.connects,
              "signals": signals, "resends": port.resends}
    store.close()
    return result


def journal_append_heap_locked(folder, count, size):
    """Append `count` records of `size` bytes with the heap locked around each append (MicroPython only), after
    one at normal heap (the first append reserves 64 seqs in the meta file); read them all back."""
    import micropython

    store = journal.Journal(folder + "/journal", 65536, 16384, 400)
    records = [_payload(number, size) for number in range(count + 1)]
    store.append(store.next_seq(), records[0])
    index = 1
    while index <= count:  # no for loop: its iterator would be an allocation around the append
        seq = store.next_seq()
        record = records[index]
        micropython.heap_lock()  # any allocation until the unlock raises MemoryError
        try:
            store.append(seq, record)
        finally:
            micropython.heap_unlock()
        index += 1
    store.rewind(1)
    buffer = bytearray(400)
    read = []
    while True:
        found = store.read_next(buffer)
        if found is None:
            break
        read.append(bytes(buffer[: found[1]]))
    store.close()
    return {"read_back": read == records, "last_seq": count + 1}


def mqtt_publish_heap_locked(port, client_id, count):
    """Publish `count` QoS 1 messages with the heap locked around each publish (MicroPython only), alternating a
    short and a long payload (1- and 2-byte remaining lengths), after one of each at normal heap (the topic's
    bytes and the head's views are kept then); then run the reader until every PUBACK is in."""
    import asyncio

    import micropython

    tokens = []
    client = mqtt.Client(client_id, keepalive_s=30, window=count + 2)
    client.on_puback = tokens.append
    topic = topics.Topics(client_id).ev
    payloads = [_payload(number, 40 if number % 2 else 300) for number in range(count + 2)]

    async def scenario():
        await client.connect("127.0.0.1", port)
        await client.publish(topic, payloads[0], puback_token=0)
        await client.publish(topic, payloads[1], puback_token=1)
        index = 2
        while index < count + 2:
            pending = client.publish(topic, payloads[index], puback_token=index)  # the caller's coroutine object
            micropython.heap_lock()
            try:
                await pending
            finally:
                micropython.heap_unlock()
            index += 1
        reader = asyncio.create_task(client.run())
        for _ in range(250):
            if len(tokens) >= count + 2:
                break
            await asyncio.sleep(0.02)
        await client.disconnect()
        try:
            await reader
        except (mqtt.MQTTError, asyncio.CancelledError):
            pass

    asyncio.run(scenario())
    return {"tokens": sorted(tokens), "payloads": payloads}


def exception_classes():
    """Every exception class the agent's modules define or import, but Python's own: [module, name, derives from
    AgentError]."""
    import builtins

    from tcagent import agent, command, compat, config, copies, feedback, guard, intake, journal, link, mqtt, pins
    from tcagent.codec import cbor, codes, cose, errors, event, gs1, ma, reasons, topics
    from tcagent.codec import compat as codec_compat

    found = []
    for module in (agent, command, compat, config, copies, feedback, guard, intake, journal, link, mqtt, pins, cbor,
                   codes, codec_compat, cose, errors, event, gs1, ma, reasons, topics):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException) and getattr(builtins, name, None) is None:
                found.append([module.__name__, name, issubclass(value, errors.AgentError)])
    return found
