"""The forwarder's steps run by hand against the platform simulator in-process: plan, claim, send, settle, at a
time the test chooses, with the simulator's own fault injection deciding each request's fate."""

from __future__ import annotations

from gateway.contract.platform_fields import ERROR_NODE
from gateway.domain import outbox
from gateway.outbound.platform_client import Outcome, judge
from harness.gateway_process import FORWARD_DEFAULTS
from tools.platform_sim import PlatformSim

INSTANCE = "uplink"


def planning(institution: str, hold_ms: int, batch_size: int = 20) -> outbox.Planning:
    return outbox.Planning(batch_size=batch_size, sale_hold_ms=hold_ms, timezone="Asia/Shanghai",
                           values={institution: {"fixmedins_name": "第一药房"}}, defaults=FORWARD_DEFAULTS)


class Uplink:
    def __init__(self, sim: PlatformSim, settings: outbox.Planning) -> None:
        self.sim = sim
        self.settings = settings

    def tick(self, store, now_ms: int, *, crash_after: int = -1) -> None:
        """One planner round, then every due request sent once. `crash_after` N: the N+1th request reaches the
        platform but its answer is never settled (the gateway died): a restart must send it again."""
        with store.transaction() as tx:
            outbox.plan(tx, self.settings, now_ms=now_ms, limit=1000)
        sent = 0
        while True:
            with store.transaction() as tx:
                claimed = outbox.claim(tx, instance=INSTANCE, now_ms=now_ms, lease_ms=600_000)
            if claimed is None:
                return
            fault = self.sim.decide()
            reply = self.sim.process(claimed.body) if fault in ("", "drop") else None
            if sent == crash_after:
                return
            sent += 1
            outcome = judge(claimed.infno, reply, ERROR_NODE) if fault == "" else Outcome("retry", fault)
            with store.transaction() as tx:
                if outcome.kind == "accepted":
                    outbox.settle_done(tx, claimed.request_id, outcome.failed, now_ms=now_ms)
                elif outcome.kind == "refused":
                    outbox.settle_rejected(tx, claimed.request_id, outcome.message, now_ms=now_ms)
                else:
                    outbox.settle_retry(tx, claimed.request_id, outcome.message, next_ms=now_ms + 1)

    @staticmethod
    def restart(store) -> None:
        """What a starting forwarder does: its requests in flight are free again."""
        with store.transaction() as tx:
            outbox.release_leases(tx, INSTANCE)

    @staticmethod
    def settled(store) -> bool:
        with store.reading() as tx:
            counts = outbox.state_counts(tx)
            open_requests = tx.one("SELECT count(*) FROM requests WHERE state = 'open'")
        return counts["pending"] == counts["sending"] == 0 and open_requests == (0,)
