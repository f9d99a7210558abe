"""Alert details, dead-letter reasons and command results in Chinese: alerts raised by the gateway's own rules,
read back."""

import doctest
import re

from scenario import Scenario, at, code

from gateway.domain import alerts, control
from gateway.faces import wording
from gateway.wire.protocol import Operation

_ENGLISH_WORD = re.compile(r"\b[a-z]{4,}\b")


def _raise_every_kind(world):
    world.counter("dev-a", "A1", "P-A")
    world.counter("dev-b", "B1", "P-B")
    world.counter("dev-c", "C1", "P-C", region="110000")
    world.counter("dev-h", "H1", "H-1", kind="hospital")
    world.scan("dev-a", code(1), at(9))
    world.scan("dev-a", code(1), at(9, 1))  # repeat_sale
    world.scan("dev-a", code(2), at(9, 2))
    world.scan("dev-b", code(2), at(9, 3))  # cross_institution_sale
    world.scan("dev-a", code(3), at(9, 4))
    world.scan("dev-c", code(3), at(9, 5))  # distant_sale (instead of cross)
    world.scan("dev-h", code(4), at(9, 6))
    world.scan("dev-a", code(4), at(9, 7))  # returned_drug
    world.counter("dev-h2", "H2", "H-2", kind="hospital", region="110000")
    world.scan("dev-h2", code(8), at(9, 6))
    world.scan("dev-a", code(8), at(9, 7))  # returned_drug from another region
    world.scan("dev-b", code(5), at(9, 8), op=Operation.PURCHASE)
    world.scan("dev-b", code(6), at(9, 9))
    world.scan("dev-b", code(7), at(9, 10))  # sales_above_purchases: 2 sold, 1 taken in
    world.ticket("A1", "T1", at(10), ("XA01", 2))
    world.scan("dev-a", code(101, "8654321"), at(10, 1), ticket="T1")  # product_mismatch standing for line 1
    world.ticket("A1", "T2", at(10, 10), ("XA01", 2))
    world.scan("dev-a", code(9), at(10, 11), ticket="T2")
    world.scan("dev-a", code(1), at(10, 12), ticket="T2")  # the repeat_sale learns its ticket line
    world.scan("dev-a", code(102, "8654321"), at(10, 13), ticket="T2")  # product_mismatch beyond T2's lines
    world.sweep(at(11))  # unscanned_sale: T1's line is due, one unit stood for by the mismatch
    world.status("dev-c", at(11, 1), backlog=500, clock=0, last_seq=2)  # backlog_high, clock_unsynced
    world.status("dev-h", at(11, 2), online=False)
    world.sweep(at(12))  # device_offline


def test_every_alert_the_rules_raise_reads_in_chinese(tmp_path):
    world = Scenario(tmp_path)
    _raise_every_kind(world)
    raised = world.alerts()
    world.close()
    kinds = {alert.type for alert in raised}
    assert kinds == set(alerts.TYPES) - {"mac_failures"}, kinds
    details = " ".join(alert.detail for alert in raised)
    for form in ("; sold on ticket T2 line 1 (XA01)", ", regions 110000 and 440300", "left without its code",
                 "every billed line has its codes", "1 more scanned but judged elsewhere"):
        assert form in details, form  # each form matching.py and ledger.py write is read here
    for alert in raised:
        chinese = wording.alert_detail(alert.type, alert.detail)
        assert chinese != alert.detail and re.search("[\u4e00-\u9fff]", chinese), (alert.type, alert.detail)
        assert not _ENGLISH_WORD.search(chinese), (alert.type, chinese)


def test_every_alert_type_has_a_wording_and_unknown_text_stays_as_it_came():
    assert set(wording.ALERT_WORDING) == set(alerts.TYPES)
    mac = "7 messages with a bad MAC in 600 s (wrong key, or someone else publishing as this device)"
    assert wording.alert_detail("mac_failures", mac) == (
        "600 秒内 7 条消息签名（MAC）错误（密钥不对，或有人冒充此设备发送）")
    assert wording.alert_detail("repeat_sale", "something new") == "something new"
    assert wording.alert_detail("no_such_type", "text") == "text"
    split = "code 812\x1d3 sold again at P-A (split 5 units) beyond its split-pack allowance"
    assert wording.alert_detail("repeat_sale", split) == "追溯码 812\x1d3 在 P-A 再次销售（拆零 5 件），超出拆零允许量"


def test_dead_letter_reasons_keep_the_platforms_words():
    assert wording.dead_letter_reason("platform refused: 追溯码已上传") == "平台拒收：追溯码已上传"
    assert wording.dead_letter_reason("not sent, fix the data or forward.defaults: opter missing") == (
        "未上传，请修正数据或配置 forward.defaults：opter missing")
    assert wording.dead_letter_reason("odd") == "odd"


def test_every_result_a_device_gives_reads_in_chinese():
    assert set(wording.COMMAND_RESULTS) == set(control.RESULTS.values())
    for result in control.RESULTS.values():
        assert re.search("[\u4e00-\u9fff]", wording.command_result(result)), result
    assert wording.command_result("") == ""


def test_the_examples_in_the_docstrings_hold():
    assert doctest.testmod(wording).failed == 0
