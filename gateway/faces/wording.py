"""Alert details, dead-letter reasons and device commands' results in Chinese, for the dashboard and its exports.

The gateway writes these texts in English where they arise (ledger.py, matching.py, devices.py, quarantine.py,
outbox.py), and the logs, the CLI and the database keep them so. A pharmacy manager reads Chinese: each English
form is matched here and said again in Chinese with the same figures, codes and names. A text no pattern knows
(a new alert written since) is given back as it is, so nothing is ever hidden; a test holds a pattern for every
alert type in alerts.TYPES. Details written by earlier versions stay in upgraded databases, so their forms are
kept beside the current ones.

>>> alert_detail("cross_institution_sale", "code 0123 sold at P-A, now at P-B")
'追溯码 0123 已在 P-A 销售，现又在 P-B 销售'
>>> alert_detail("repeat_sale", "code 0123 sold again at P-A (whole pack) beyond its split-pack allowance; "
...              "sold on ticket T7 line 2 (XA01)")
'追溯码 0123 在 P-A 再次销售（整盒），超出拆零允许量；售于销售单 T7 第 2 行（XA01）'
>>> dead_letter_reason("platform refused: 追溯码重复")
'平台拒收：追溯码重复'
>>> command_result("refused: out of range")
'拒绝：参数超出设备允许范围'
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["alert_detail", "dead_letter_reason", "command_result", "ALERT_WORDING", "COMMAND_RESULTS"]

_Say = Callable[[re.Match[str]], str]


def _sold_as(text: str) -> str:
    units = re.fullmatch(r"split (\d+) units", text)
    return f"拆零 {units.group(1)} 件" if units else "整盒" if text == "whole pack" else text


def _returned(m: re.Match[str]) -> str:
    apart = f"，区划 {m['r1']} 与 {m['r2']} 相隔 {m['s']} 秒" if m["s"] else ""
    return f"追溯码 {m['code']} 已在医院 {m['h']} 发药，现又在药店 {m['p']} 销售（疑似回流药）{apart}"


def _unscanned(m: re.Match[str]) -> str:
    judged = f"，另有 {m['o']} 个扫码已在其他告警中判定" if m["o"] else ""
    return (f"销售单 {m['t']} 第 {m['no']} 行（{m['l']} ×{m['q']}）：应扫 {m['n']} 个追溯码，实扫 {m['s']} 个{judged}；"
            f"{m['m']} 件没有任何追溯码（无码销售）")


_SOLD_ON = "; sold on ticket "
"""What matching.py appends to a duplicate sale's alert once the scan's ticket is known, once per ticket."""
_SOLD_ON_LINE = re.compile(r"(?P<t>.*?)(?: line (?P<no>\d+) \((?P<l>[^()]*)\))?", re.S)


def _sold_on(note: str) -> str:
    match = _SOLD_ON_LINE.fullmatch(note)
    if match is None or not match["no"]:
        return f"；售于销售单 {note}"
    return f"；售于销售单 {match['t']} 第 {match['no']} 行（{match['l']}）"


def _offline(match: re.Match[str]) -> str:
    if match["how"] == "no status":
        return f"已 {match['s']} 秒没有状态上报"
    return f"已离线 {match['s']} 秒（遗嘱消息）"


ALERT_WORDING: dict[str, list[tuple[re.Pattern[str], _Say]]] = {
    "repeat_sale": [(re.compile(r"code (?P<code>.*) sold again at (?P<at>.*) \((?P<as>.*)\) beyond its split-pack "
                                r"allowance", re.S),
                     lambda m: f"追溯码 {m['code']} 在 {m['at']} 再次销售（{_sold_as(m['as'])}），超出拆零允许量")],
    "returned_drug": [(re.compile(r"code (?P<code>.*) dispensed at hospital (?P<h>.*), now sold at pharmacy "
                                  r"(?P<p>.*) \(回流药 suspicion\)"
                                  r"(?:, regions (?P<r1>\S*) and (?P<r2>\S*) (?P<s>\d+) s apart)?", re.S),
                       _returned)],
    "cross_institution_sale": [(re.compile(r"code (?P<code>.*) sold at (?P<a>.*), now at (?P<b>.*)", re.S),
                                lambda m: f"追溯码 {m['code']} 已在 {m['a']} 销售，现又在 {m['b']} 销售")],
    "distant_sale": [(re.compile(r"code (?P<code>.*) sold at (?P<a>.*) in region (?P<r1>.*) and at (?P<b>.*) in "
                                 r"(?P<r2>\S*) (?P<s>\d+) s apart \(cloned code suspicion\)", re.S),
                      lambda m: f"追溯码 {m['code']} 在 {m['a']}（区划 {m['r1']}）和 {m['b']}（区划 {m['r2']}）相隔 "
                                f"{m['s']} 秒销售（疑似克隆码）"),
                     (re.compile(r"code (?P<code>.*) sold in region (?P<r1>.*) and in (?P<r2>\S*) (?P<s>\d+) s "
                                 r"apart \(cloned code suspicion\)", re.S),
                      lambda m: f"追溯码 {m['code']} 在区划 {m['r1']} 和 {m['r2']} 相隔 {m['s']} 秒销售"
                                "（疑似克隆码）")],
    "sales_above_purchases": [(re.compile(r"product (?P<pid>.*): (?P<sold>-?\d+) packs sold, (?P<inb>-?\d+) taken "
                                          r"in \(margin (?P<m>\d+)\)", re.S),
                               lambda m: f"药品 {m['pid']}：已售 {m['sold']} 盒，入库 {m['inb']} 盒（容差 {m['m']}）")],
    "unscanned_sale": [(re.compile(r"ticket (?P<t>.*) line (?P<no>\d+) \((?P<l>.*) x(?P<q>\d+)\): (?P<s>\d+) of "
                                   r"(?P<n>\d+) codes scanned(?:, (?P<o>\d+) more scanned but judged elsewhere)?; "
                                   r"(?P<m>\d+) without any code \(无码销售\)", re.S), _unscanned),
                       (re.compile(r"ticket (?P<t>.*) line (?P<line>.*): (?P<s>\d+) of (?P<n>\d+) codes scanned "
                                   r"\(无码销售\)", re.S),
                        lambda m: f"销售单 {m['t']} 的 {m['line']} 行：应扫 {m['n']} 个追溯码，"
                                  f"实扫 {m['s']} 个（无码销售）")],
    "product_mismatch": [(re.compile(r"ticket (?P<t>.*) line (?P<no>\d+) \((?P<l>.*) x(?P<q>\d+)\) left without its "
                                     r"code: scanned (?P<p>.*) \(code (?P<c>.*)\), which the ticket does not bill "
                                     r"\(串换\)", re.S),
                          lambda m: f"销售单 {m['t']} 第 {m['no']} 行（{m['l']} ×{m['q']}）未扫本品追溯码：扫的是 "
                                    f"{m['p']}（追溯码 {m['c']}），该药品不在销售单上（串换）"),
                         (re.compile(r"ticket (?P<t>.*), every billed line has its codes: scanned (?P<p>.*) "
                                     r"\(code (?P<c>.*)\), which the ticket does not bill \(串换\)", re.S),
                          lambda m: f"销售单 {m['t']} 各行追溯码已齐，另扫了 {m['p']}（追溯码 {m['c']}），"
                                    "该药品不在销售单上（串换）"),
                         (re.compile(r"scanned product (?P<p>.*) is not on the ticket \(billed: (?P<b>.*)\)", re.S),
                          lambda m: f"扫码药品 {m['p']} 不在销售单上（单上药品：{m['b']}）")],
    "device_offline": [(re.compile(r"(?P<how>no status|offline \(Last Will\)) for (?P<s>\d+) s"), _offline)],
    "backlog_high": [(re.compile(r"(?P<n>\d+) events not acknowledged(?P<full> and its journal is full)?"),
                      lambda m: f"{m['n']} 条扫码记录未被网关确认" + ("，设备存储已满" if m["full"] else ""))],
    "clock_unsynced": [(re.compile(r"device clock never synced: event times fall back to the gateway's"),
                        lambda m: "设备时钟从未校准：扫码时间改用网关收到的时间")],
    "mac_failures": [(re.compile(r"(?P<n>\d+) messages with a bad MAC in (?P<w>\d+) s \(wrong key, or someone else "
                                 r"publishing as this device\)"),
                      lambda m: f"{m['w']} 秒内 {m['n']} 条消息签名（MAC）错误（密钥不对，或有人冒充此设备发送）")],
}
"""Alert type -> (pattern of its English detail, the Chinese saying it); the first that matches whole wins."""

_REASON_PREFIXES = (
    ("platform refused: ", "平台拒收："),
    ("not sent, the row could not be built: ", "未上传，无法生成上传数据："),
    ("not sent, fix the data or forward.defaults: ", "未上传，请修正数据或配置 forward.defaults："),
    ("not sent, set ", "未上传，请在配置中填写 "),
    ("not sent: ", "未上传："),
)

COMMAND_RESULTS = {
    "applied": "已执行",
    "refused: out of range": "拒绝：参数超出设备允许范围",
    "refused: replayed id": "拒绝：指令编号不新（防重放）",
    "refused: replay guard lost": "拒绝：设备防重放记录丢失，需先经 NTP 校时",
}
"""A device's answer to a command (control.RESULTS' texts) in Chinese."""


def alert_detail(kind: str, detail: str) -> str:
    """The Chinese of an alert's English `detail`, or `detail` itself when no pattern of `kind` matches it (the
    tickets a duplicate sale was found on, appended later, are said after it)."""
    said, *notes = detail.split(_SOLD_ON)
    for pattern, say in ALERT_WORDING.get(kind, ()):
        match = pattern.fullmatch(said)
        if match:
            return say(match) + "".join(_sold_on(note) for note in notes)
    return detail


def dead_letter_reason(reason: str) -> str:
    """A dead letter's reason with its English opening in Chinese; the platform's own words stay as they came."""
    for english, chinese in _REASON_PREFIXES:
        if reason.startswith(english):
            return chinese + reason[len(english):]
    return reason


def command_result(result: str) -> str:
    """The Chinese of a command's result (empty before the device answers), or the result itself if unknown."""
    return COMMAND_RESULTS.get(result, result)
