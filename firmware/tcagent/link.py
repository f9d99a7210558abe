"""The network side of the agent: stay connected, publish the journal in seq order, resend what is not acked.

Reconnects with exponential backoff and jitter; after every connect it resends
from the gateway's last ack. A backlog drains in batches (a CBOR array of
COSE_Mac0 messages); at most `send_window` events are out without an ack, and
an ack that does not come within `ack_timeout_s` makes it resend from the ack.
"""

import asyncio
import binascii
import random

from tcagent import feedback, mqtt
from tcagent.codec import cbor
from tcagent.codec.compat import const
from tcagent.codec.errors import AgentError
from tcagent.codec.event import RECORD_MAX

_ARRAY_HEAD = const(2)  # room for a CBOR array head of up to 2 bytes before the batch's items
_OFFLINE_WILL = b"\xa2\x00\x01\x01\xf4"  # {0: 1, 1: false}


class LinkPort:
    """What the link may touch of the device, and nothing more (the agent makes one; a test can make its own).
    The link publishes from the journal, the status and the command answers waiting here, hands what arrives to
    `on_message`, and sleeps on `wake`; the agent fills `answers`, sets `resend_from` on the gateway's resend
    command, and reports `resends` in its status.

    The device as the link sees it: `device` (its MQTT client id and user), its `journal`, its `topics`
    (tcagent.codec.topics.Topics), `status()` (the retained status message, bytes), `on_message(topic,
    payload)` (an ack or a command arrived; never raises) and `wake` (an asyncio.Event set when there is something
    to send)."""

    def __init__(self, device, journal, topics, status, on_message, wake):
        self.device = device
        self.journal = journal
        self.topics = topics
        self.status = status
        self.on_message = on_message
        self.wake = wake
        self.answers = []  # signed command answers to publish, oldest first (the agent bounds the list)
        self.resend_from = 0  # a seq the gateway asked to have again, 0 for none; the link takes it
        self.resends = 0  # times the link sent again from the ack after `ack_timeout_s` without one


def buffers_for(config):
    """The link's record and batch buffers: about 4.6 KB in two runs, which a capped heap has in one piece only
    before the journal's boot scan."""
    return bytearray(RECORD_MAX), bytearray(_ARRAY_HEAD + config["batch_bytes"])


class Link:
    """Publishes the journal of `port` (a LinkPort, the only part of the device the link
    touches) over MQTT, through the board layer `hal`, as `config` (the device's settings, which commands may
    change while it runs) says."""

    def __init__(self, port, hal, config, buffers=None):
        """`buffers` from `buffers_for(config)`, taken before the journal's boot scan fragments a small heap."""
        self.port = port
        self.hal = hal
        self.config = config
        self.client = None
        self.sent_seq = 0  # highest seq published on this connection
        self.connects = 0
        self._record, self._batch = buffers or buffers_for(self.config)
        self._pending = 0  # length of a record read but not yet sent (kept in _record)
        self._pending_seq = 0

    def _ssl(self):
        if not self.config["tls"]:
            return None
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.config["tls_ca"]:
            context.load_verify_locations(cadata=_der(self.config["tls_ca"]))
        return context

    async def run(self):
        """Connect, serve, and after any loss wait a growing, jittered delay before the next try."""
        delay_s = 1
        hal = self.hal
        if not hal.network_available():
            print("log link: this board has no network (no Wi-Fi radio): scans stay in the journal")
            hal.signal(feedback.OFFLINE)
            await asyncio.Event().wait()  # never set: the link idles, the supervisor sees a live task
        while True:
            connected = False
            if await hal.connect_network():
                await hal.sync_clock()
                connected = await self._serve()
            if connected:
                delay_s = 1
            hal.signal(feedback.OFFLINE)
            await asyncio.sleep(delay_s * (0.5 + random.random()))
            delay_s = min(delay_s * 2, self.config["backoff_max_s"])

    async def _serve(self):
        """One connection's life; True when it got as far as connected."""
        port = self.port
        password = self.config["mqtt_password"]
        client = mqtt.Client(port.device, user=port.device if password else None, password=password or None,
                             keepalive_s=self.config["keepalive_s"], will=(port.topics.status, _OFFLINE_WILL, True))
        client.on_message = port.on_message
        reader = None
        try:
            await client.connect(self.config["broker_host"], self.config["broker_port"], ssl=self._ssl(),
                                 server_hostname=self.config["broker_host"])
            self.connects += 1
            reader = asyncio.create_task(self._read(client))
            await client.subscribe(port.topics.ack)
            await client.subscribe(port.topics.cmd)
            await client.publish(port.topics.status, port.status(), retain=True)
            self.client = client
            self.hal.signal(feedback.ONLINE)
            await self._send_loop(client, reader)
        except (OSError, AgentError) as error:  # the network's errors and the client's (MQTTError): one log line
            print("log link: %s" % error)
        finally:
            self.client = None
            client.close()
            if reader is not None:
                reader.cancel()
        return self.connects > 0 and reader is not None

    async def _read(self, client):
        """The connection's reader; its end is one log line (an unretrieved task error would print a traceback).
        The send loop sees the reader done and reconnects."""
        try:
            await client.run()
        except (OSError, AgentError) as error:
            print("log link: %s" % error)

    async def _send_loop(self, client, reader):
        port = self.port
        hal = self.hal
        store = port.journal
        self._restart(store.acked_seq + 1)
        last_progress = hal.ticks_ms()
        while client.connected and not reader.done():  # a reader that ended for any reason: reconnect now
            while port.answers:  # command answers first: an operator waits for them
                await client.publish(port.topics.res, port.answers[0])
                port.answers.pop(0)
            if port.resend_from:  # the gateway asks again for what the journal still holds, acked or not
                self._restart(port.resend_from)
                port.resend_from = 0
            if store.acked_seq >= self.sent_seq:
                last_progress = hal.ticks_ms()
            elif hal.ticks_diff(hal.ticks_ms(), last_progress) > self.config["ack_timeout_s"] * 1000:
                port.resends += 1
                self._restart(store.acked_seq + 1)  # the gateway may have restarted: publish again from its ack
                last_progress = hal.ticks_ms()
            if self.sent_seq - store.acked_seq < self.config["send_window"] and await self._publish_next(client):
                continue
            port.wake.clear()
            try:
                await asyncio.wait_for(port.wake.wait(), 1)
            except asyncio.TimeoutError:
                pass
            if store.acked_seq > self.sent_seq:
                self._restart(store.acked_seq + 1)  # acked beyond what this connection sent: skip ahead

    def _restart(self, seq):
        self.port.journal.rewind(seq)
        self.sent_seq = seq - 1
        self._pending = 0

    def _next_record(self):
        """(seq, length) of the next record to send, held in self._record; None when there is none."""
        if self._pending:
            found = (self._pending_seq, self._pending)
            self._pending = 0
            return found
        return self.port.journal.read_next(self._record)

    async def _publish_next(self, client):
        """Publish the next record, or a batch of them when a backlog waits; False when nothing is ready."""
        found = self._next_record()
        if found is None:
            return False
        room = self.config["send_window"] - (self.sent_seq - self.port.journal.acked_seq)
        limit = min(self.config["batch_max"], room)
        batch = self._batch
        position = _ARRAY_HEAD
        count = 0
        last_seq = 0
        while found is not None:
            seq, length = found
            if count and (count >= limit or position + length > len(batch)):
                self._pending, self._pending_seq = length, seq  # keep it for the next message
                break
            batch[position : position + length] = memoryview(self._record)[:length]
            position += length
            count += 1
            last_seq = seq
            if count >= limit:
                break
            found = self.port.journal.read_next(self._record)
        if count == 1:
            payload = memoryview(batch)[_ARRAY_HEAD:position]
        else:
            head = bytearray()
            cbor.write_head(head, 4, count)
            start = _ARRAY_HEAD - len(head)
            batch[start:_ARRAY_HEAD] = head
            payload = memoryview(batch)[start:position]
        await client.publish(self.port.topics.ev, payload, puback_token=last_seq)
        self.sent_seq = last_seq
        return True

    async def status_loop(self):
        """Publish the retained status every `status_interval_s` while connected. A board without network prints
        it on the console instead (`log status` and the message's CBOR in hex, docs/protocol.md), the technician's
        view of its backlog, heap and alarms."""
        without_network = not self.hal.network_available()
        while True:
            await asyncio.sleep(self.config["status_interval_s"])
            if without_network:
                print("log status %s" % binascii.hexlify(self.port.status()).decode())
                continue
            client = self.client
            if client is not None and client.connected:
                try:
                    await client.publish(self.port.topics.status, self.port.status(), retain=True)
                except (OSError, AgentError) as error:
                    print("log status: %s" % error)


def _der(path):
    """The certificate in `path` as DER (MicroPython's TLS takes DER only), PEM or DER on disk."""
    with open(path, "rb") as stream:
        data = stream.read()
    if not data.startswith(b"-----BEGIN"):
        return data
    body = b"".join(line for line in data.split(b"\n") if line and not line.startswith(b"-----"))
    return binascii.a2b_base64(body)
