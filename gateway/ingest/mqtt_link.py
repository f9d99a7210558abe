"""The gateway's MQTT session, run in a child process.

paho reads and writes every packet in Python. In the gateway's own process that work would share one GIL with
the verification and the commit; in a child process it runs beside them, on another core. The child hands the
messages over a pipe in batches (whatever arrived meanwhile, so a quiet broker adds no wait). After each commit
the parent sends one command: what to publish (device acks, ticket results, commands) and which messages to
acknowledge to the broker, still only once they are committed.

The child ends when the pipe closes (its parent stopped or died: the broker keeps the session and sends the
unacknowledged messages again). If the child dies, the parent starts another with the same client id; the
broker resends what was in flight with the same packet ids, so acks of messages already in the parent's
hands still name the right messages.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway import logs

__all__ = ["LinkSettings", "MqttChild", "Received"]

log = logging.getLogger("gateway.mqtt")
_SESSION_EXPIRY_S = 7 * 24 * 3600
_BATCH_MAX = 500

Received = tuple[int, int, str, bytes, int]
"""(mid, qos, topic, payload, received ms) of one message."""


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    username: str
    password: str
    subscriptions: tuple[str, ...]
    log_level: int = logging.WARNING


class MqttChild:
    """The parent's side: start the child, get its batches, tell it what to publish and acknowledge."""

    def __init__(self, settings: LinkSettings, deliver: Callable[[list[Received]], None]) -> None:
        """`deliver` gets each batch of messages, on the link's reader thread."""
        self.settings = settings
        self._deliver = deliver
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read, name="mqtt-link", daemon=True)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def alive(self) -> bool:
        return self._reader.is_alive()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        self._spawn()
        self._reader.start()

    def _spawn(self) -> None:
        """`python -m gateway.ingest.mqtt_link FD`: a plain child (no fork of a process that runs threads), in the
        gateway's process group, its end of a socket pair as FD; the settings are its first message."""
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH", "")]))
        self._process = subprocess.Popen([sys.executable, "-m", "gateway.ingest.mqtt_link", str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()], env={**os.environ, "PYTHONPATH": path})
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(dataclasses.asdict(self.settings))

    def done(self, publishes: list[tuple[str, bytes, int]], acks: list[tuple[int, int]]) -> None:
        """Publish these (topic, payload, qos), then acknowledge these (mid, qos) to the broker."""
        self._send(("done", publishes, acks))

    def reconnect(self) -> None:
        """Drop the connection and make a new one: the broker sends again what was not acknowledged."""
        self._send(("reconnect",))

    def _send(self, command: tuple[Any, ...]) -> None:
        with self._send_lock:
            if self._conn is not None:
                try:
                    self._conn.send(command)
                except OSError:  # the child died; the reader starts another, and the broker resends
                    log.warning("the MQTT process is gone; %s not sent", command[0])

    def _read(self) -> None:
        while True:
            assert self._conn is not None
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                self._connected.clear()
                if self._stopping.is_set():
                    return
                log.error("the MQTT process ended (exit code %s); starting another",
                          self._process.poll() if self._process else None)
                time.sleep(1)
                with self._send_lock:
                    self._spawn()
                continue
            if kind == "messages":
                self._deliver(value)
            elif kind == "connected":
                if value:
                    self._connected.set()
                else:
                    self._connected.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._send(("stop",))
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
        if self._reader.ident is not None:
            self._reader.join(timeout=5)


def _child(conn: Connection, settings: LinkSettings) -> None:
    """The child process: the paho client, a thread passing messages up, and the parent's commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent says when to stop
    logs.configure(settings.log_level)  # the parent's format: one JSON object a line
    send_lock = threading.Lock()

    def send(kind: str, value: object) -> None:
        with send_lock:
            conn.send((kind, value))

    inbox: queue.SimpleQueue[Received] = queue.SimpleQueue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=paho.MQTTv5,
                         manual_ack=True)
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    client.reconnect_delay_set(min_delay=1, max_delay=10)

    def on_connect(client: paho.Client, userdata: object, flags: object, reason: object, properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the gateway: %s", reason)
            return
        client.subscribe([(topic, 1) for topic in settings.subscriptions])

    def on_subscribe(client: paho.Client, userdata: object, mid: int, reasons: list[Any],
                     properties: object) -> None:
        refused = [f"{topic} ({reason})" for topic, reason in zip(settings.subscriptions, reasons, strict=False)
                   if getattr(reason, "is_failure", False)]
        if refused:
            log.error("broker refused the subscriptions %s", ", ".join(refused))
            return
        log.info("connected to %s:%d, subscribed to %s", settings.host, settings.port,
                 ", ".join(settings.subscriptions))
        send("connected", True)  # only now: a message published before the SUBACK may not reach a new session

    stopping = threading.Event()
    disconnected = threading.Event()

    def on_disconnect(client: paho.Client, userdata: object, flags: object, reason: object,
                      properties: object) -> None:
        disconnected.set()
        if stopping.is_set():
            return
        send("connected", False)
        log.warning("disconnected from the broker (%s); reconnecting", reason)

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        inbox.put((message.mid, message.qos, message.topic, bytes(message.payload), time.time_ns() // 1_000_000))

    def pass_up() -> None:
        while True:
            batch = [inbox.get()]
            try:
                while len(batch) < _BATCH_MAX:
                    batch.append(inbox.get_nowait())
            except queue.Empty:
                pass
            try:
                send("messages", batch)
            except OSError:
                os._exit(0)  # the parent is gone

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = _SESSION_EXPIRY_S
    client.connect_async(settings.host, settings.port, keepalive=30, clean_start=False, properties=properties)
    client.loop_start()
    threading.Thread(target=pass_up, daemon=True).start()
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            break
        if command[0] == "done":
            for topic, payload, qos in command[1]:
                client.publish(topic, payload, qos=qos)
            for mid, qos in command[2]:
                client.ack(mid, qos)
        elif command[0] == "reconnect":
            client.reconnect()
        elif command[0] == "stop":  # the last acks written before the DISCONNECT, and that before we go
            stopping.set()
            deadline = time.monotonic() + 5
            while client.want_write() and time.monotonic() < deadline:
                time.sleep(0.01)
            client.disconnect()
            disconnected.wait(5)
            break
    client.loop_stop()
    os._exit(0)



if __name__ == "__main__":
    _connection = Connection(int(sys.argv[1]))
    _child(_connection, LinkSettings(**_connection.recv()))
