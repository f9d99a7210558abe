"""A small asyncio MQTT 3.1.1 client: the protocol only, no reconnecting (that is the link's job).

CONNECT (user, password, Last Will), PUBLISH QoS 0/1 with a bounded in-flight
window, PUBACK both ways, SUBSCRIBE, PINGREQ keepalive, DISCONNECT. Any
protocol or socket failure raises MQTTError and leaves the client
closed; the caller reconnects. Runs on MicroPython's and CPython's asyncio.
"""

import asyncio
import struct

from tcagent.codec.compat import const
from tcagent.codec.errors import AgentError
from tcagent.compat import sleep_ms

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_HEAD_MAX = const(5)  # a PUBLISH's type byte and its remaining length (4 bytes at most)
_TOPICS_KEPT = const(8)  # topics whose encoded bytes are kept (a device publishes on three)
_CONNACK_REASONS = ("accepted", "bad protocol version", "client id rejected", "server unavailable",
                    "bad user name or password", "not authorised")


class MQTTError(AgentError):
    """The connection failed or the broker broke the protocol."""


def _varint(out, length):
    while True:
        byte = length & 0x7F
        length >>= 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return


def _string(out, data):
    if isinstance(data, str):
        data = data.encode()
    out.extend(struct.pack(">H", len(data)))
    out.extend(data)


class Client:
    """One MQTT session over one connection."""

    def __init__(self, client_id, user=None, password=None, keepalive_s=60, will=None, window=4,
                 max_inbound=4096, topic_max=64):
        """`topic_max`: the longest topic publish() takes (bytes); its packet head is built in a buffer of that
        room, taken here, so that publishing allocates nothing (tests/firmware/test_mqtt.py, under heap_lock)."""
        self.client_id = client_id
        self.user = user
        self.password = password
        self.keepalive_s = keepalive_s
        self.will = will  # (topic, payload, retain), published at QoS 1
        self.window = window
        self.max_inbound = max_inbound
        self._reader = None
        self._writer = None
        self._next_pid = 0
        self._inflight_pids = [0] * window  # packet ids awaiting PUBACK, 0 for a free slot
        self._inflight_tokens = [None] * window  # the caller's puback_token of each, given back to on_puback
        self._inflight_count = 0
        self._head = bytearray(_HEAD_MAX + 2 + topic_max + 2)  # type, length, topic, packet id of a PUBLISH
        self._head_views = {}  # head length -> a view of that many bytes of _head, made once
        self._topics = {}  # topic -> its bytes, at most _TOPICS_KEPT
        self._space = asyncio.Event()
        self._suback = asyncio.Event()
        self._suback_pid = 0
        self.connected = False
        self.on_message = None  # on_message(topic: str, payload: bytes): called before the PUBACK is sent
        self.on_puback = None  # on_puback(puback_token)

    async def connect(self, host, port, ssl=None, server_hostname=None, timeout_ms=10000):
        """Open the connection (TLS when `ssl` is a context) and finish CONNECT/CONNACK, or raise MQTTError."""
        try:
            if ssl is None:
                opening = asyncio.open_connection(host, port)
            else:
                opening = asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname or host)
            self._reader, self._writer = await asyncio.wait_for(opening, timeout_ms / 1000)
            await self._send(_CONNECT, self._connect_body())
            kind, data = await self._read_packet(timeout_ms)
        except (OSError, MQTTError, asyncio.TimeoutError) as error:
            self.close()
            raise MQTTError("cannot reach %s:%d: %s" % (host, port, error))
        if kind != _CONNACK or len(data) != 2:
            self.close()
            raise MQTTError("expected CONNACK, got packet type 0x%02x" % kind)
        if data[1]:
            self.close()
            reason = _CONNACK_REASONS[data[1]] if data[1] < len(_CONNACK_REASONS) else str(data[1])
            raise MQTTError("broker refused the connection: %s" % reason)
        self.connected = True
        for slot in range(self.window):
            self._inflight_pids[slot] = 0
            self._inflight_tokens[slot] = None
        self._inflight_count = 0
        self._space.set()

    def _connect_body(self):
        flags = 0x02  # clean session: unacked events are resent from the journal, not by the broker
        body = bytearray(b"\x00\x04MQTT\x04")
        if self.will:
            flags |= 0x04 | 0x08 | (0x20 if self.will[2] else 0)
        if self.user is not None:
            flags |= 0x80
        if self.password is not None:
            flags |= 0x40
        body.append(flags)
        body.extend(struct.pack(">H", self.keepalive_s))
        _string(body, self.client_id)
        if self.will:
            _string(body, self.will[0])
            _string(body, self.will[1])
        if self.user is not None:
            _string(body, self.user)
        if self.password is not None:
            _string(body, self.password)
        return body

    async def _send(self, header, body):
        packet = bytearray()
        packet.append(header)
        _varint(packet, len(body))
        packet.extend(body)
        await self._write(packet)

    async def _write(self, data, more=None):
        """Queue one whole packet (`data`, then `more`) with no await in between, then drain.

        Another task's packet (a PUBACK from the reader) can then only come before or after this one,
        never between its header and its payload.
        """
        if self._writer is None:
            raise MQTTError("not connected")
        try:
            self._writer.write(data)
            if more is not None:
                self._writer.write(more)
            await self._writer.drain()
        except OSError as error:
            self.close()
            raise MQTTError("write failed: %r" % error)

    async def _read_packet(self, timeout_ms):
        try:
            return await asyncio.wait_for(self._read_packet_now(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            self.close()
            raise MQTTError("no answer from the broker in %d ms" % timeout_ms)

    async def _read_packet_now(self):
        reader = self._reader
        if reader is None:
            raise MQTTError("not connected")
        try:
            first = await reader.readexactly(1)
            length = 0
            shift = 0
            while True:
                byte = (await reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MQTTError("malformed remaining length")
            if length > self.max_inbound:
                raise MQTTError("inbound packet of %d bytes over the %d limit" % (length, self.max_inbound))
            data = await reader.readexactly(length) if length else b""
        except (OSError, EOFError, MQTTError) as error:
            self.close()
            raise MQTTError("connection lost: %r" % error)
        return first[0], data

    def _pid(self):
        self._next_pid = self._next_pid % 0xFFFF + 1
        return self._next_pid

    def inflight(self):
        return self._inflight_count

    async def publish(self, topic, payload, retain=False, qos=1, puback_token=None):
        """Send a PUBLISH; with QoS 1 wait for room in the window first. Returns the packet id (0 for QoS 0).

        `puback_token` is handed to on_puback when the broker acknowledges the message. The packet is built in
        buffers taken at connect time: once the window has room, publishing allocates nothing (a topic's bytes
        are kept at its first publish; the coroutine object is the caller's)."""
        while qos and self._inflight_count >= self.window:
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), self.keepalive_s)
            except asyncio.TimeoutError:
                self.close()  # PUBACKs stopped coming: start over on a new connection, resending from the journal
                raise MQTTError("no PUBACK for %d s" % self.keepalive_s)
            if not self.connected:
                raise MQTTError("connection lost while waiting for the in-flight window")
        pid = self._pid() if qos else 0
        head = self._head_view(self._publish_head(self._topic_bytes(topic), len(payload), retain, qos, pid))
        writer = self._writer
        if writer is None:
            raise MQTTError("not connected")
        if qos:
            self._hold(pid, puback_token)  # before the write: the PUBACK may come before the drain returns
        try:  # one whole packet with no await in between, as _write does
            writer.write(head)
            writer.write(payload)
            if getattr(writer, "out_buf", True):  # CPython's writer, or bytes MicroPython's could not send at once
                await writer.drain()
            else:
                await sleep_ms(0)  # what MicroPython's drain() does when all went out, without its generator
        except OSError as error:
            self.close()
            raise MQTTError("write failed: %r" % error)
        return pid

    def _topic_bytes(self, topic):
        data = self._topics.get(topic)
        if data is None:
            data = topic.encode() if isinstance(topic, str) else bytes(topic)
            if len(data) > len(self._head) - _HEAD_MAX - 4:
                raise ValueError("topic of %d bytes over the %d limit" % (len(data), len(self._head) - _HEAD_MAX - 4))
            if len(self._topics) < _TOPICS_KEPT:
                self._topics[topic] = data
        return data

    def _publish_head(self, topic, payload_length, retain, qos, pid):
        """Write a PUBLISH's bytes up to its payload into _head (no allocation); return their count."""
        head = self._head
        head[0] = _PUBLISH | (qos << 1) | (1 if retain else 0)
        remaining = 2 + len(topic) + (2 if qos else 0) + payload_length
        position = 1
        while True:  # the remaining length, 7 bits a byte
            byte = remaining & 0x7F
            remaining >>= 7
            head[position] = byte | 0x80 if remaining else byte
            position += 1
            if not remaining:
                break
        head[position] = len(topic) >> 8
        head[position + 1] = len(topic) & 0xFF
        position += 2
        head[position : position + len(topic)] = topic
        position += len(topic)
        if qos:
            head[position] = pid >> 8
            head[position + 1] = pid & 0xFF
            position += 2
        return position

    def _head_view(self, length):
        view = self._head_views.get(length)
        if view is None:  # at most one per length _head can hold
            view = memoryview(self._head)[:length]
            self._head_views[length] = view
        return view

    def _hold(self, pid, puback_token):
        """Keep `pid` in a free slot of the window until its PUBACK."""
        for slot in range(self.window):
            if not self._inflight_pids[slot]:
                self._inflight_pids[slot] = pid
                self._inflight_tokens[slot] = puback_token
                self._inflight_count += 1
                return

    async def subscribe(self, topic, qos=1, timeout_ms=10000):
        pid = self._pid()
        body = bytearray(struct.pack(">H", pid))
        _string(body, topic)
        body.append(qos)
        self._suback.clear()
        self._suback_pid = pid
        await self._send(_SUBSCRIBE, body)
        try:
            await asyncio.wait_for(self._suback.wait(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            self.close()
            raise MQTTError("no SUBACK for %s" % topic)

    async def run(self):
        """Read packets until the connection fails (then raise MQTTError); ping every keepalive/2.

        Silence for a whole keepalive period (no PINGRESP either) counts as a dead connection, and
        so does a packet the broker malformed. `on_message` must not raise: it owns its payloads.
        """
        pinger = asyncio.create_task(self._ping_loop())
        try:
            while True:
                kind, data = await self._read_packet(self.keepalive_s * 1000)
                try:
                    await self._dispatch(kind, data)
                except MQTTError:
                    raise
                except Exception as error:  # a short or garbled packet (struct, index, UTF-8 errors)
                    self.close()
                    raise MQTTError("malformed packet type 0x%02x: %r" % (kind, error))
        finally:
            pinger.cancel()

    async def _dispatch(self, kind, data):
        packet_type = kind & 0xF0
        if packet_type == _PUBACK:
            pid = struct.unpack(">H", data)[0]
            for slot in range(self.window):
                if pid and self._inflight_pids[slot] == pid:
                    token = self._inflight_tokens[slot]
                    self._inflight_pids[slot] = 0
                    self._inflight_tokens[slot] = None
                    self._inflight_count -= 1
                    self._space.set()
                    if self.on_puback is not None:
                        self.on_puback(token)
                    break
        elif packet_type == _PUBLISH:
            topic_length = struct.unpack_from(">H", data, 0)[0]
            topic = str(data[2 : 2 + topic_length], "utf-8")
            position = 2 + topic_length
            qos = (kind >> 1) & 0x03
            pid = 0
            if qos:
                pid = struct.unpack_from(">H", data, position)[0]
                position += 2
            if self.on_message is not None:
                self.on_message(topic, data[position:])
            if qos:
                await self._send(_PUBACK, struct.pack(">H", pid))
        elif packet_type == _SUBACK:
            if struct.unpack_from(">H", data, 0)[0] == self._suback_pid:
                if data[2] == 0x80:
                    raise MQTTError("subscription refused by the broker")
                self._suback.set()
        elif packet_type != _PINGRESP:
            raise MQTTError("unexpected packet type 0x%02x" % kind)

    async def _ping_loop(self):
        while self.connected:
            await asyncio.sleep(self.keepalive_s / 2)
            await self._write(b"\xc0\x00")

    async def disconnect(self):
        if self.connected:
            try:
                await self._write(b"\xe0\x00")
            except MQTTError:
                pass
        self.close()

    def close(self):
        self.connected = False
        self._space.set()  # wake publishers so they see the loss
        writer = self._writer
        self._writer = None
        if writer is not None:
            try:
                writer.close()
                socket = getattr(writer, "s", None)  # MicroPython's Stream.close() leaves its socket open
                if socket is not None:
                    socket.close()
            except OSError:
                pass
