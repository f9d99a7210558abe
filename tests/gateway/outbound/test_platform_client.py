"""The platform client's judgement of answers, the tif signature, backoff and the circuit breaker."""

import hashlib
import random
import time

from gateway.contract.platform_fields import ERROR_NODE
from gateway.outbound.forwarder import Breaker, backoff_ms
from gateway.outbound.platform_client import NoSigner, PlatformClient, TifSigner, judge
from tools.platform_sim import Faults, PlatformSim

NODES = {**ERROR_NODE}


def test_success_needs_infcode_0_and_retrslt_1():
    assert judge("3505", {"infcode": 0, "output": {"result": {"retRslt": "1"}}}, NODES).kind == "accepted"
    refused = judge("3505", {"infcode": 0, "output": {"result": {"retRslt": "0", "msgRslt": "库存不足"}}}, NODES)
    assert (refused.kind, refused.message) == ("refused", "retRslt '0': 库存不足")
    assert judge("3505", {"infcode": -1, "err_msg": "签名错误"}, NODES).message == "infcode -1: 签名错误"
    assert judge("3505", ["not", "a", "map"], NODES).kind == "retry"


def test_a_batch_answer_names_the_refused_rows():
    answer = {"infcode": 0, "output": {"result": {"retRslt": "0"},
                                       "selinfoErrDetail": [{"fixmedins_bchno": "TCE7", "err_msg": "编码不存在"}]}}
    outcome = judge("3505", answer, NODES)
    assert (outcome.kind, outcome.failed) == ("accepted", {"TCE7": "编码不存在"})


def test_tif_headers_and_transport_failures(tmp_path):
    headers = TifSigner("paas-1", "secret").headers(b"{}")
    expected = hashlib.sha256((headers["x-tif-timestamp"] + "secret" + headers["x-tif-nonce"]
                               + headers["x-tif-timestamp"]).encode()).hexdigest()
    assert headers["x-tif-paasid"] == "paas-1" and headers["x-tif-signature"] == expected
    assert abs(int(headers["x-tif-timestamp"]) - time.time()) < 5
    sim = PlatformSim(tmp_path / "sim.sqlite3", Faults(paas_token="secret"))
    sim.start()
    try:
        signed = PlatformClient(base_url=sim.url, path="/x", timeout_s=2, verify=True, signer=TifSigner("p", "secret"))
        unsigned = PlatformClient(base_url=sim.url, path="/x", timeout_s=2, verify=True, signer=NoSigner())
        assert "签名" not in signed.send("3505", b"{}").message  # refused for its content, not its signature
        assert "签名校验失败" in unsigned.send("3505", b"{}").message
        signed.close()
        unsigned.close()
    finally:
        sim.stop()
    nowhere = PlatformClient(base_url="http://127.0.0.1:9", path="/x", timeout_s=1, verify=True, signer=NoSigner())
    assert nowhere.send("3505", b"{}").kind == "retry"


def test_backoff_has_full_jitter_under_a_cap():
    chance = random.Random(3)
    delays = [backoff_ms(attempt, 1000, 30000, chance) for attempt in range(12) for _ in range(20)]
    assert min(delays) >= 0 and max(delays) <= 30000
    assert max(backoff_ms(1, 1000, 30000, chance) for _ in range(200)) <= 2000


def test_the_breaker_opens_after_failures_and_lets_one_probe_through():
    breaker = Breaker(3, cooldown_ms=100)
    for _ in range(3):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.is_open and not breaker.allow()
    time.sleep(0.12)
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record(False)
    assert not breaker.allow()
    time.sleep(0.12)
    assert breaker.allow()
    breaker.record(True)
    assert not breaker.is_open and breaker.allow() and breaker.opened == 1


def test_https_is_verified_with_the_configured_ca(tmp_path):
    from tools.certs import make_ca_and_server

    files = make_ca_and_server(tmp_path / "tls", ["localhost", "127.0.0.1"])
    sim = PlatformSim(tmp_path / "sim.sqlite3", Faults(), tls=(files.server_cert, files.server_key))
    sim.start()
    try:
        assert sim.url.startswith("https://")
        trusted = PlatformClient(base_url=sim.url, path="/x", timeout_s=5, verify=str(files.ca_cert),
                                 signer=NoSigner())
        outcome = trusted.send("3505", b"{}")
        assert outcome.kind == "refused" and "infcode -1" in outcome.message  # reached the platform over TLS
        untrusted = PlatformClient(base_url=sim.url, path="/x", timeout_s=5, verify=True, signer=NoSigner())
        refused = untrusted.send("3505", b"{}")
        assert refused.kind == "retry" and "ConnectError" in refused.message  # unknown CA: nothing sent
        trusted.close()
        untrusted.close()
    finally:
        sim.stop()
