"""The running gateway's side of device control: publish the queued operator commands, signed.

A thread claims queued rows of the commands table (gateway/domain/control.py) every second, or at once when the API
queued one in this process (`nudge`), signs each with its device's key and hands it to ingest's MQTT link.
The CLI queues rows from another process; they go out within the second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gateway.domain import control
from gateway.domain.control import KINDS
from gateway.store.base import Store, retrying
from gateway.wire import topics
from gateway.wire.commands import sign_command

__all__ = ["CommandSender"]

log = logging.getLogger("gateway.control")
_POLL_S = 1.0

Publish = Callable[[list[tuple[str, bytes, int]]], None]


class CommandSender:
    """Claims queued commands and publishes them through `publish` ((topic, payload, qos) list)."""

    def __init__(self, store: Store, publish: Publish, *, instance: str) -> None:
        self._store = store
        self._publish = publish
        self._instance = instance
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-sender", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def nudge(self) -> None:
        """A command was queued: send it now rather than at the next poll."""
        self._wake.set()

    def send_due(self) -> int:
        """Claim and publish what is queued; how many were sent."""
        now_ms = time.time_ns() // 1_000_000

        def claim() -> list[control.Command]:
            with self._store.transaction() as tx:
                return control.claim(tx, now_ms=now_ms, instance=self._instance)

        claimed = retrying(claim)
        publishes = []
        for command in claimed:
            key = self._store.device_key(command.device)
            if key is None:  # deregistered since it was queued: it stays `sent` and becomes `unanswered`
                log.warning("command %d for %s not sent: the device has no key any more", command.id, command.device)
                continue
            signed = sign_command(key, command.command_id, KINDS[command.kind], command.argument,
                                  issued_ms=command.issued_ms)
            publishes.append((topics.command(command.device), signed, 1))
            log.info("sending %s to %s for %s (command id %d)", command.kind, command.device, command.issued_by,
                     command.command_id)
        if publishes:
            self._publish(publishes)
        return len(publishes)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.send_due()
            except Exception:  # a database hiccup: try again at the next poll
                log.exception("sending device commands failed")
            self._wake.wait(_POLL_S)
            self._wake.clear()
