"""A POS simulator: checkouts at counters whose scanners are real firmware processes (harness/virtual_device.py).

For each checkout it scans the ticket-number barcode, then each item's trace code through the counter's scan
engine (the device's pty), as a cashier would, asks the gateway whether every line has its codes (无码不付,
`POST /api/v1/tickets/check`; counted in `held_payments` when not) and posts the sale ticket. At the given
rates a checkout carries a pattern the gateway must catch: a box sold before (duplicate), a box of another
product than billed (mismatch), or an item billed without a scan (unscanned).
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

from harness.virtual_device import VirtualDevice

__all__ = ["Lane", "PosSimulator", "PRODUCTS"]

PRODUCTS = [("8123456", "XA01", "阿莫西林胶囊", 24), ("8654321", "XB02", "布洛芬片", 20),
            ("8111112", "XH08", "二甲双胍片", 30)]
"""(7-digit product prefix, insurance list code, name, pack size): the catalog the simulator sells from."""


def catalog_csv() -> str:
    rows = [f"{prefix},{code},{name},{pack},1" for prefix, code, name, pack in PRODUCTS]
    return "pid,list_code,name,pack_size,code_required\n" + "\n".join(rows) + "\n"


@dataclass
class Lane:
    """One counter: its terminal id and its scanner."""

    terminal: str
    scanner: VirtualDevice


class PosSimulator:
    def __init__(self, api: str, token: str, counters: list[Lane], *, seed: int = 1,
                 duplicate: float = 0.0, mismatch: float = 0.0, unscanned: float = 0.0) -> None:
        self.api = api
        self.token = token
        self.counters = counters
        self.chance = random.Random(seed)
        self.rates = {"duplicate": duplicate, "mismatch": mismatch, "unscanned": unscanned}
        self.injected: Counter[str] = Counter()
        self.checkouts = 0
        self._serial = 0
        self._sold: list[str] = []
        self.held_payments = 0
        """Checkouts the gateway's no-code-no-pay check said not to settle yet."""
        self.last_check: dict[str, object] = {}

    def _code(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{int(time.time()) % 100000:05d}{self._serial:08d}"

    def checkout(self) -> dict[str, object]:
        """One customer at a random counter; returns the ticket posted."""
        first_round = self.checkouts < len(self.counters)  # every counter gets a customer early on
        counter = self.counters[self.checkouts] if first_round else self.chance.choice(self.counters)
        self.checkouts += 1
        number = f"{counter.terminal}-{self.checkouts:05d}"
        items = [self.chance.choice(PRODUCTS) for _ in range(self.chance.randint(1, 3))]
        billed = {item[0] for item in items}
        counter.scanner.scan(f"TC:TKT:{number}")
        time.sleep(0.15)
        for prefix, _, _, _ in items:
            draw = self.chance.random()
            if draw < self.rates["unscanned"]:
                self.injected["unscanned"] += 1
                continue
            draw -= self.rates["unscanned"]
            others = [product[0] for product in PRODUCTS if product[0] not in billed]
            if draw < self.rates["mismatch"] and others:
                self.injected["mismatch"] += 1
                text = self._code(self.chance.choice(others))
            elif draw < self.rates["mismatch"] + self.rates["duplicate"] and len(self._sold) > 3:
                self.injected["duplicate"] += 1  # not one of the last few: a re-read inside the debounce is no sale
                text = self.chance.choice(self._sold[:-3])
            else:
                text = self._code(prefix)
                self._sold.append(text)
            counter.scanner.scan(text)
            time.sleep(self.chance.uniform(0.3, 0.8))  # the cashier picks up the next box
        ticket = {"number": number, "terminal": counter.terminal, "time": int(time.time() * 1000),
                  "lines": [{"list_code": code, "quantity": 1} for _, code, _, _ in items]}
        self.last_check = self._ask(ticket)
        if self.last_check.get("pay") is False:
            self.held_payments += 1  # 无码不付: a real cashier fixes the scans first; this one settles anyway
        self._post(ticket)
        counter.scanner.scan("TC:TKT:")  # the next customer
        return ticket

    def _ask(self, ticket: dict[str, object]) -> dict[str, object]:
        """无码不付: the gateway's answer, per line, before settling ({} when it cannot be had)."""
        request = urllib.request.Request(f"{self.api}/api/v1/tickets/check", data=json.dumps(ticket).encode(),
                                         method="POST", headers={"Authorization": f"Bearer {self.token}",
                                                                 "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                found: dict[str, object] = json.loads(answer.read())
                return found
        except (urllib.error.URLError, ValueError):
            return {}

    def _post(self, ticket: dict[str, object]) -> int:
        request = urllib.request.Request(f"{self.api}/api/v1/tickets", data=json.dumps(ticket).encode(),
                                         method="POST", headers={"Authorization": f"Bearer {self.token}",
                                                                 "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
