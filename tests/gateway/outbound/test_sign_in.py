"""Sign-in (9001) managed by the forwarder against the platform simulator, which refuses a missing, unknown,
superseded or expired sign_no: signed in at start, the sign_no carried, renewed on age and on refusal, and every
row still accepted exactly once."""

import json
import time

import pytest
from scenario import at, code, one_counter

from gateway.domain import outbox
from gateway.metrics import Metrics
from gateway.outbound.forwarder import Forwarder
from gateway.outbound.platform_client import NoSigner, PlatformClient
from gateway.outbound.sign_in import SignInFailed, SignIns, SignInSettings
from gateway.settings import ForwardSettings
from harness.gateway_process import FORWARD_DEFAULTS
from tools.platform_sim import Faults, PlatformSim

INSTITUTION = "H44030000001"


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, INSTITUTION) as world:
        yield world


@pytest.fixture
def platform(tmp_path):
    with PlatformSim(tmp_path / "platform.sqlite3", Faults(sign_in_required=True), seed=3) as sim:
        yield sim


def _forwarder(world, url, **settings):
    options = dict(base_url=url, batch_size=1, concurrency=2, rate_per_s=0, sale_hold_s=0, backoff_base_ms=20,
                   backoff_cap_ms=200, timeout_ms=2000, defaults=FORWARD_DEFAULTS,
                   institutions={INSTITUTION: {"fixmedins_name": "第一药房"}})
    options.update(settings)
    return Forwarder(ForwardSettings(**options), world.store, timezone="Asia/Shanghai", instance="test",
                     metrics=Metrics(world.store))


def _settled(world, done, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with world.store.reading() as tx:
            counts = outbox.state_counts(tx)
        if counts["done"] + counts["dead"] >= done and counts["pending"] == counts["sending"] == 0:
            return counts
        time.sleep(0.05)
    raise AssertionError(f"outbox not settled: {counts}")


def _sign_nos(world):
    """The sign_no of each upload, in order."""
    return [json.loads(body)["sign_no"] for (body,) in world.store.query(
        "SELECT body FROM requests WHERE infno <> '9001' ORDER BY id")]


def test_the_forwarder_signs_in_at_start_and_every_upload_carries_the_sign_no(world, platform):
    forwarder = _forwarder(world, platform.url)
    forwarder.start()
    try:
        deadline = time.monotonic() + 10
        while platform.counts().get("sign_ins", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert platform.counts()["sign_ins"] == 1  # before any scan: at start, for the configured institution
        for serial in range(5):
            world.scan("dev-a", code(serial), at(9, serial))
        assert _settled(world, 5)["done"] == 5
    finally:
        forwarder.stop()
    [(sign_no,)] = world.store.query("SELECT sign_no FROM sign_ins WHERE institution = ?", (INSTITUTION,))
    assert sign_no.startswith("SN") and set(_sign_nos(world)) == {sign_no}
    counts = platform.counts()
    assert counts["sign_ins"] == 1 and counts["accepted_rows"] == 5 and counts.get("refused_sign_no", 0) == 0


def test_a_refused_sign_no_is_renewed_and_the_request_goes_again_under_a_new_msgid(world, platform):
    """The platform ends every sign_no (its day end) between two uploads: the next upload is refused for it; the
    forwarder signs in again and sends the same rows again, and they are accepted once."""
    forwarder = _forwarder(world, platform.url)
    forwarder.start()
    try:
        world.scan("dev-a", code(1), at(9))
        _settled(world, 1)
        assert platform.expire_sign_ins() == 1
        for serial in range(2, 6):
            world.scan("dev-a", code(serial), at(9, serial))
        counts = _settled(world, 5)
    finally:
        forwarder.stop()
    sim = platform.counts()
    assert counts["done"] == 5 and counts["dead"] == 0
    assert sim["refused_sign_no"] >= 1 and sim["sign_ins"] == 2
    assert sim["accepted_rows"] == 5 == sim["distinct_bchno"] and sim.get("doubles", 0) == 0
    assert len(set(_sign_nos(world))) == 2
    assert forwarder.metrics.forward_requests.labels("sign_no_refused")._value.get() >= 1


def test_an_expired_sign_no_is_refused_by_the_platform_and_renewed(world, tmp_path):
    """The simulator's sign_no lives 1 s; the gateway thinks it lives 12 h: every refusal is met by a new
    sign-in, and nothing is lost or doubled."""
    with PlatformSim(tmp_path / "ttl.sqlite3", Faults(sign_in_required=True, sign_ttl_s=1.0), seed=4) as platform:
        forwarder = _forwarder(world, platform.url)
        forwarder.start()
        try:
            world.scan("dev-a", code(1), at(9))
            _settled(world, 1)
            time.sleep(1.2)
            world.scan("dev-a", code(2), at(9, 1))
            counts = _settled(world, 2)
        finally:
            forwarder.stop()
        sim = platform.counts()
    assert counts["done"] == 2 and sim["accepted_rows"] == 2 and sim.get("doubles", 0) == 0
    assert sim["refused_sign_no"] == 1 and sim["sign_ins"] == 2


def _sign_ins(world, platform, **options):
    client = PlatformClient(base_url=platform.url, path="/fsi/api/rsfComIfsService/callService", timeout_s=5,
                            verify=False, signer=NoSigner())
    settings = SignInSettings(ttl_ms=options.pop("ttl_ms", 3_600_000), refusal="签到|sign_no",
                              timezone="Asia/Shanghai")
    values = {**FORWARD_DEFAULTS, "fixmedins_name": "第一药房", **options}
    return SignIns(settings, world.store, client.exchange, lambda institution: values), client


def test_a_sign_no_older_than_its_lifetime_is_renewed_and_a_stale_refusal_drops_only_the_stored_one(world, platform):
    signing, client = _sign_ins(world, platform, ttl_ms=60_000)
    try:
        now = time.time_ns() // 1_000_000
        first = signing.current(INSTITUTION, now_ms=now)
        assert signing.current(INSTITUTION, now_ms=now + 59_000) == first  # kept, not signed in again
        second = signing.current(INSTITUTION, now_ms=now + 61_000)
        assert second != first and signing.signed_in == 2
        signing.refused(INSTITUTION, first)  # another worker's late news about the old one: the new one stays
        assert signing.current(INSTITUTION) == second and signing.signed_in == 2
        signing.refused(INSTITUTION, second)
        assert signing.current(INSTITUTION) not in (first, second) and signing.signed_in == 3
    finally:
        client.close()
    assert signing.is_refusal("签到编号无效或已过期: sign_no X") and not signing.is_refusal("医保目录编码XB02不存在")
    states = world.store.query("SELECT state FROM requests WHERE infno = '9001'")
    assert states == [("signed-in",)] * 3


def test_a_sign_in_the_platform_refuses_holds_the_uploads_back_without_losing_them(world, platform):
    signing, client = _sign_ins(world, platform, mac="X" * 21)  # the sign-in cannot be sent
    try:
        with pytest.raises(SignInFailed, match="signIn.mac is 21 characters"):
            signing.current(INSTITUTION)
    finally:
        client.close()
    forwarder = _forwarder(world, platform.url, defaults={**FORWARD_DEFAULTS, "mac": "X" * 21})
    forwarder.start()
    try:
        world.scan("dev-a", code(1), at(9))
        time.sleep(1.0)
        with world.store.reading() as tx:
            counts = outbox.state_counts(tx)
        assert counts["sending"] == 1 and counts["dead"] == 0  # waiting for a sign-in, not given up
    finally:
        forwarder.stop()
    assert platform.counts().get("accepted_rows", 0) == 0
