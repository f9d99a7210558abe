"""Sign-in (9001): the `sign_no` every upload carries, got from the platform and renewed by the forwarder.

One sign_no per institution, kept in the table `sign_ins` so that a restart and the other gateway instances use it
too. It is renewed when it is older than `ttl_ms` (how long the platform keeps one alive is not published: a day
at most in the HIS clients we read, so the default renews twice a day) and when the platform refuses it: a
refusal whose message matches `refusal` (configurable, the wording is not published). A refused sign_no is
dropped only if it is still the stored one, so instances that meet the same refusal sign in once between them,
not once each. A sign-in goes as a request of its own (in `requests`, for its unique msgid and as a record: state
`sign-in` until it succeeds, then `signed-in`), never retried with the same msgid: a lost answer means signing in
again.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.contract import mapping
from gateway.contract.platform_fields import SIGN_IN, SIGN_IN_OUTPUT, check_envelope, check_sign_in
from gateway.domain import outbox
from gateway.errors import GatewayError
from gateway.store.base import Store

__all__ = ["SignInSettings", "SignIns", "SignInFailed"]

log = logging.getLogger("gateway.sign_in")


class SignInFailed(GatewayError, RuntimeError):
    """No sign_no could be had: the platform's reason, or the transport failure (`transport`)."""

    def __init__(self, message: str, *, transport: bool = False) -> None:
        super().__init__(message)
        self.transport = transport


@dataclass(frozen=True, kw_only=True)
class SignInSettings:
    ttl_ms: int
    """Sign in again when the stored sign_no is older than this."""
    refusal: str
    """A regular expression: a refused request whose message matches it was refused for its sign_no."""
    timezone: str


class SignIns:
    """The live sign_no of each institution, signing in when there is none."""

    def __init__(self, settings: SignInSettings, store: Store, exchange: Callable[[bytes], object],
                 values: Callable[[str], Mapping[str, str]]) -> None:
        """`exchange` sends a body and gives the parsed answer or why there is none (PlatformClient.exchange);
        `values` gives an institution's configured platform values (forward.defaults under its own)."""
        self.settings = settings
        self._store = store
        self._exchange = exchange
        self._values = values
        self._refusal = re.compile(settings.refusal)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.signed_in = 0
        """Sign-ins this process made (for metrics and tests)."""

    def current(self, institution: str, *, now_ms: int | None = None) -> str:
        """The live sign_no of `institution`, signing in first when none is stored or it is too old."""
        held = self._stored(institution, now_ms)
        if held:
            return held
        with self._lock_of(institution):  # the other workers wait for this sign-in rather than make their own
            return self._stored(institution, now_ms) or self._sign_in(institution)

    def is_refusal(self, message: str) -> bool:
        """Whether a refusal's message says the sign_no was refused (not the rows)."""
        return bool(self._refusal.search(message))

    def refused(self, institution: str, sign_no: str) -> None:
        """The platform refused `sign_no`: drop it, unless another worker or instance already replaced it."""
        with self._store.transaction() as tx:
            tx.write("DELETE FROM sign_ins WHERE institution = ? AND sign_no = ?", (institution, sign_no))
        log.info("the platform refused sign_no %s of %s: signing in again", sign_no, institution)

    def _lock_of(self, institution: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(institution, threading.Lock())

    def _stored(self, institution: str, now_ms: int | None) -> str:
        with self._store.reading() as tx:
            row = tx.one("SELECT sign_no, signed_ms FROM sign_ins WHERE institution = ?", (institution,))
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        return str(row[0]) if row is not None and now - int(row[1]) < self.settings.ttl_ms else ""

    def _sign_in(self, institution: str) -> str:
        values = self._values(institution)
        data: dict[str, object] = {"opter_no": values.get("opter_no") or values.get("opter", ""),
                                   "mac": values.get("mac") or _mac(), "ip": values.get("ip") or _ip()}
        now_ms = time.time_ns() // 1_000_000
        with self._store.transaction() as tx:  # a request row for a unique msgid, and as the record of it
            request_id = outbox.record_sign_in(tx, institution, SIGN_IN, msgid=f"sign-in-{uuid.uuid4().hex}",
                                               now_ms=now_ms)
            msgid = mapping.msgid_for(institution, request_id, now_ms, self.settings.timezone)
            body = mapping.sign_in_envelope(msgid=msgid, institution=institution, sign_in=data, values=values,
                                            now_ms=now_ms, timezone=self.settings.timezone)
            encoded = json.dumps(body, ensure_ascii=False).encode()
            outbox.sign_in_sent(tx, request_id, msgid=msgid, body=encoded)
        problems = check_envelope({key: value for key, value in body.items() if key != "input"}) + check_sign_in(data)
        if problems:
            raise SignInFailed(f"sign-in of {institution} not sent, set forward.institutions.\"{institution}\" or "
                               "forward.defaults: " + "; ".join(problems))
        reply = self._exchange(encoded)
        if isinstance(reply, str):
            raise SignInFailed(f"sign-in of {institution}: {reply}", transport=True)
        output = reply.get("output") if isinstance(reply, dict) else None
        signed = output.get(SIGN_IN_OUTPUT) if isinstance(output, dict) else None
        sign_no = signed.get("sign_no") if isinstance(signed, dict) else None
        if not isinstance(reply, dict) or reply.get("infcode") != 0 or not isinstance(sign_no, str) or not sign_no:
            detail = reply.get("err_msg", "") if isinstance(reply, dict) else ""
            raise SignInFailed(f"sign-in of {institution} refused: {str(detail)[:300] or str(reply)[:300]}")
        with self._store.transaction() as tx:
            tx.write("INSERT INTO sign_ins (institution, sign_no, signed_ms) VALUES (?, ?, ?) ON CONFLICT "
                     "(institution) DO UPDATE SET sign_no = excluded.sign_no, signed_ms = excluded.signed_ms",
                     (institution, sign_no, now_ms))
            outbox.sign_in_answered(tx, msgid, now_ms=now_ms)
        self.signed_in += 1
        log.info("signed in %s: sign_no %s", institution, sign_no)
        return sign_no


def _mac() -> str:
    node = uuid.getnode()
    return "-".join(f"{(node >> shift) & 0xFF:02X}" for shift in range(40, -8, -8))


def _ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())[:15]
    except OSError:
        return "127.0.0.1"
