"""Forwarding to the medical-insurance platform: plan requests from the outbox, send them, settle the answers.

A planner thread turns ready outbox rows into stored requests (and into 3507 withdrawals where an accepted sale row
must be corrected: gateway.domain.outbox); `concurrency` workers each claim one open request
under a lease, send it, and settle it: accepted rows done (and counted as uploaded), refused rows dead letters
with the platform's reason, unknown outcomes retried with the same msgid after an exponential backoff with full
jitter and a cap. A circuit breaker stops sending after consecutive transport failures and lets one probe through
after its cool-down; a token bucket caps requests per second.

Every request carries the institution's live `sign_no` (gateway.outbound.sign_in): the workers sign in (9001)
when there is none or it is too old, write it into the stored request before sending it, and when the platform
refuses the sign_no they drop it, sign in again and send the request again under a new msgid (it processed nothing under
the old one). The planner signs in the configured institutions at start.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from gateway.contract import mapping
from gateway.domain import outbox
from gateway.metrics import Metrics
from gateway.outbound.platform_client import NoSigner, Outcome, PlatformClient, Signer, TifSigner
from gateway.outbound.sign_in import SignInFailed, SignIns, SignInSettings
from gateway.settings import ForwardSettings
from gateway.store.base import Store

__all__ = ["Breaker", "Forwarder", "backoff_ms"]

log = logging.getLogger("gateway.forward")


def backoff_ms(attempts: int, base_ms: int, cap_ms: int, chance: random.Random) -> int:
    """Full jitter: uniform in [0, min(cap, base * 2^attempts)]."""
    return int(chance.uniform(0, min(cap_ms, base_ms * 2 ** min(attempts, 30))))


class Breaker:
    """Closed until `failures` transport failures in a row; then open for `cooldown_ms`; then one probe."""

    def __init__(self, failures: int, cooldown_ms: int) -> None:
        self._failures_allowed = failures
        self._cooldown_ms = cooldown_ms
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        self._probing = False
        self.opened = 0

    @property
    def is_open(self) -> bool:
        return self._failures >= self._failures_allowed

    def allow(self) -> bool:
        with self._lock:
            if not self.is_open:
                return True
            if self._probing or time.monotonic() * 1000 < self._open_until:
                return False
            self._probing = True
            return True

    def release(self) -> None:
        """A probe slot taken but not used (nothing to send)."""
        with self._lock:
            self._probing = False

    def record(self, transport_ok: bool) -> None:
        with self._lock:
            self._probing = False
            if transport_ok:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self._failures_allowed:
                if self._failures == self._failures_allowed:
                    self.opened += 1
                    log.warning("platform unreachable: circuit breaker open, probing every %d ms",
                                self._cooldown_ms)
                self._open_until = time.monotonic() * 1000 + self._cooldown_ms


class _RateLimit:
    def __init__(self, per_s: int) -> None:
        self._per_s = per_s
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self, stop: threading.Event) -> None:
        if not self._per_s:
            return
        with self._lock:
            slot = max(self._next, time.monotonic())
            self._next = slot + 1 / self._per_s
        stop.wait(max(0.0, slot - time.monotonic()))


class Forwarder:
    def __init__(self, settings: ForwardSettings, store: Store, *, timezone: str, instance: str, metrics: Metrics,
                 client: PlatformClient | None = None) -> None:
        self.settings = settings
        self.store = store
        self.instance = instance
        self.metrics = metrics
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_cooldown_ms)
        self._planning = outbox.Planning(batch_size=settings.batch_size, sale_hold_ms=settings.sale_hold_s * 1000,
                                         timezone=timezone, values=settings.institutions, defaults=settings.defaults)
        signer: Signer = TifSigner(settings.paas_id, settings.paas_token) if settings.signer == "tif" else NoSigner()
        self.client = client or PlatformClient(
            base_url=settings.base_url, path=settings.path, timeout_s=settings.timeout_ms / 1000,
            verify=settings.ca_file or settings.verify_tls, signer=signer, sale_error_node=settings.sale_error_node)
        self.sign_ins = SignIns(SignInSettings(ttl_ms=settings.sign_in_ttl_s * 1000, refusal=settings.sign_in_refusal,
                                               timezone=timezone), store, self.client.exchange,
                                self._planning_values) if settings.sign_in else None
        self._timezone = timezone
        self._limit = _RateLimit(settings.rate_per_s)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._chance = random.Random()
        self._threads = [threading.Thread(target=self._plan_loop, name="forward-plan", daemon=True)] + [
            threading.Thread(target=self._work_loop, name=f"forward-{number}", daemon=True)
            for number in range(max(1, settings.concurrency))]

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        with self.store.transaction() as tx:
            released = outbox.release_leases(tx, self.instance)
        if released:
            log.info("%d requests in flight when this instance stopped are sent again (same msgid)", released)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=self.settings.timeout_ms / 1000 + 5)
        self.client.close()

    def _now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def _planning_values(self, institution: str) -> dict[str, str]:
        return {**self.settings.defaults, **self.settings.institutions.get(institution, {})}

    def _sign_in_configured(self) -> None:
        """At start: a sign_no for every configured institution (the others sign in with their first request)."""
        for institution in self.settings.institutions:
            if self._stop.is_set() or self.sign_ins is None:
                return
            try:
                self.sign_ins.current(institution)
            except SignInFailed as error:
                log.warning("%s; the workers try again with the first request", error)

    def _plan_loop(self) -> None:
        self._sign_in_configured()
        limit = max(100, self.settings.batch_size * max(1, self.settings.concurrency) * 4)
        while not self._stop.is_set():
            try:
                with self.store.transaction() as tx:
                    made = outbox.plan(tx, self._planning, now_ms=self._now_ms(), limit=limit)
            except Exception:  # the rows stay pending; planned on the next round
                log.exception("planning requests failed")
                made = 0
            if made:
                self._wake.set()
            self._stop.wait(0.05 if made else 0.5)

    def _work_loop(self) -> None:
        lease_ms = self.settings.timeout_ms * 3
        while not self._stop.is_set():
            if not self.breaker.allow():
                self._stop.wait(0.2)
                continue
            self._limit.wait(self._stop)
            try:
                with self.store.transaction() as tx:
                    claimed = outbox.claim(tx, instance=self.instance, now_ms=self._now_ms(), lease_ms=lease_ms)
            except Exception:
                log.exception("claiming a request failed")
                claimed = None
            if claimed is None:
                self.breaker.release()
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            signed = self._signed(claimed)
            if signed is None:
                continue
            claimed, sign_no = signed
            started = time.monotonic()
            outcome = self.client.send(claimed.infno, claimed.body)
            self.metrics.forward_latency.observe(time.monotonic() - started)
            self.breaker.record(outcome.kind != "retry")
            self.metrics.breaker_open.set(int(self.breaker.is_open))
            if sign_no and outcome.kind == "refused" and self.sign_ins and self.sign_ins.is_refusal(outcome.message):
                self._sign_no_refused(claimed, sign_no, outcome.message)
                continue
            self._settle(claimed, outcome)

    def _signed(self, claimed: outbox.Claimed) -> tuple[outbox.Claimed, str] | None:
        """The request with the institution's live sign_no in it (signing in first if need be); None when no
        sign_no could be had (the request goes again after a backoff)."""
        if self.sign_ins is None:
            return claimed, ""
        try:
            sign_no = self.sign_ins.current(claimed.institution)
        except SignInFailed as error:
            self.breaker.record(not error.transport)
            self._retry_later(claimed, str(error))
            log.warning("%s", error)
            return None
        with self.store.transaction() as tx:
            return outbox.resign(tx, claimed, sign_no=sign_no), sign_no

    def _sign_no_refused(self, claimed: outbox.Claimed, sign_no: str, message: str) -> None:
        """The platform refused the sign_no, so it processed nothing: sign in again, and send the request again
        under a new msgid (the old one may keep getting this refusal)."""
        assert self.sign_ins is not None
        self.metrics.forward_requests.labels("sign_no_refused").inc()
        self.sign_ins.refused(claimed.institution, sign_no)
        now = self._now_ms()
        msgid = claimed.msgid
        while msgid == claimed.msgid:
            msgid = mapping.msgid_for(claimed.institution, claimed.request_id, now, self._timezone)
            now += 1000
        with self.store.transaction() as tx:
            outbox.resign(tx, claimed, sign_no="", msgid=msgid)
        self._retry_later(claimed, f"sign_no refused, signing in again: {message}")

    def _retry_later(self, claimed: outbox.Claimed, error: str) -> None:
        delay = backoff_ms(claimed.attempts, self.settings.backoff_base_ms, self.settings.backoff_cap_ms, self._chance)
        with self.store.transaction() as tx:
            outbox.settle_retry(tx, claimed.request_id, error, next_ms=self._now_ms() + delay)

    def _settle(self, claimed: outbox.Claimed, outcome: Outcome) -> None:
        now = self._now_ms()
        self.metrics.forward_requests.labels(outcome.kind).inc()
        with self.store.transaction() as tx:
            if outcome.kind == "accepted":
                done, dead = outbox.settle_done(tx, claimed.request_id, outcome.failed, now_ms=now)
                self.metrics.forward_rows.labels("accepted").inc(done)
                self.metrics.forward_rows.labels("refused").inc(dead)
            elif outcome.kind == "refused":
                dead = outbox.settle_rejected(tx, claimed.request_id, outcome.message, now_ms=now)
                self.metrics.forward_rows.labels("refused").inc(dead)
                log.warning("platform refused request %s (%s): %s", claimed.msgid, claimed.infno, outcome.message)
            else:
                delay = backoff_ms(claimed.attempts, self.settings.backoff_base_ms, self.settings.backoff_cap_ms,
                                   self._chance)
                outbox.settle_retry(tx, claimed.request_id, outcome.message, next_ms=now + delay)
                log.info("request %s: %s; again in %d ms", claimed.msgid, outcome.message, delay)
