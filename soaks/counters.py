"""Counters for the kill soak (soaks/gateway_kills.py): simulated ones, signing as the firmware does and resending
like it, and the real firmware on micropython; and a thread that keeps them selling."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from harness.traffic import AckWatcher, signed_sale
from harness.virtual_device import VirtualDevice

__all__ = ["SimulatedCounter", "FirmwareCounter", "Counter", "Selling", "counters_for"]


class SimulatedCounter:
    """One counter: sales signed as the firmware signs them, published QoS 1 on its own connection."""

    def __init__(self, name: str, key: bytes, port: int, acks: AckWatcher, ack_timeout_s: float) -> None:
        self.name = name
        self.key = key
        self.resent = 0
        self._acks = acks
        self._ack_timeout_s = ack_timeout_s
        self._sent: list[bytes] = []  # by seq - 1
        self._progress = (0, time.monotonic())  # (acked seq, when it last moved)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}")
        self._client.max_queued_messages_set(0)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    @property
    def published(self) -> int:
        return len(self._sent)

    def sell(self, code: str, number: int) -> None:
        self._sent.append(signed_sale(self.name, len(self._sent) + 1, self.key, number, code))
        self._client.publish(f"tc/v1/{self.name}/ev", self._sent[-1], qos=1)

    def tick(self, window: int = 64) -> None:
        """Publish again, as the firmware does, what the ack has not covered for ack_timeout_s."""
        acked, since = self._progress
        now = time.monotonic()
        if self._acks.acked.get(self.name, 0) != acked:
            self._progress = (self._acks.acked.get(self.name, 0), now)
        elif acked < len(self._sent) and now - since > self._ack_timeout_s:
            for message in self._sent[acked:acked + window]:
                self._client.publish(f"tc/v1/{self.name}/ev", message, qos=1)
                self.resent += 1
            self._progress = (acked, now)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class FirmwareCounter:
    """The real firmware on micropython, its scans written to its pty; it publishes and resends by itself."""

    def __init__(self, device: VirtualDevice) -> None:
        self.name = device.config["device_id"]
        self.key = bytes.fromhex(device.config["key_hex"])
        self.resent = 0
        self.scans = 0
        self._device = device
        device.start()
        device.wait_for(r"^signal online", timeout=20)

    @property
    def published(self) -> int:
        """Seqs the firmware took (on its flash); all of them once every scan was taken."""
        return len(self._device.taken())

    def sell(self, code: str, number: int) -> None:
        self._device.scan(code)
        self.scans += 1

    def tick(self) -> None:
        pass

    def close(self) -> None:
        self._device.stop()


Counter = SimulatedCounter | FirmwareCounter


class Selling:
    """Sells at `rate` per second round-robin over the counters, each sale its own box, on a thread."""

    def __init__(self, counters: list[Counter], rate: float) -> None:
        self.counters = counters
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="selling", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        number = 0
        while not self._stop.is_set():
            self.counters[number % len(self.counters)].sell(f"8123456{number:013d}", number)
            number += 1
            if number % 20 == 0:
                for counter in self.counters:
                    counter.tick()
            self._stop.wait(max(0.0, started + number / self._rate - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def counters_for(folder: Path, keys: dict[str, bytes], port: int, acks: AckWatcher, ack_timeout_s: int, *,
                 micropython_build: str = "micropython") -> list[Counter]:
    """Simulated counters for the bench-* names, the firmware on `micropython_build` for the dev-* ones."""
    counters: list[Counter] = []
    try:
        for name, key in keys.items():
            if name.startswith("bench-"):
                counters.append(SimulatedCounter(name, key, port, acks, ack_timeout_s))
            else:
                config = {"device_id": name, "key_hex": key.hex(), "broker_host": "127.0.0.1", "broker_port": port,
                          "status_interval_s": 2, "ack_timeout_s": ack_timeout_s, "debounce_ms": 300}
                counters.append(FirmwareCounter(VirtualDevice(folder / name, config,
                                                                interpreter=micropython_build)))
    except BaseException:
        for counter in counters:
            counter.close()
        raise
    return counters
