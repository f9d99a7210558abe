"""Stored events to the platform's inventory and sales rows and request envelopes (docs/platform.md).

Operation -> interface: sale and hospital dispense -> 3505, sale return -> 3506, purchase/inbound -> 3503,
purchase return -> 3504, stocktake -> 3501, stock adjustment (the device's ADJUST mode) -> 3502; adjustments
posted to the API (gateway.domain.adjustments) are 3502 rows too. A 3502 row's change type (`inv_chg_type`) and price
(`pric`) come from the document, else forward.defaults.

A sale row is one ticket line: every code scanned for it and the line's quantity (packs, or units on a split
line); a sale scan tied to no ticket goes up as its own row (one pack, or its split units). Which scans go in a
row and when, and how a row is corrected (3507), is the outbox's business. Values come, first to last, from the
scan, its ticket line and ticket, the catalog, the ticket's `platform` object, then `forward.institutions.<code>`
and `forward.defaults`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.contract.platform_fields import BATCH_NODE, ENVELOPE, INV_DATA_TYPE, ROW_NODE, ROWS, SIGN_IN, SIGN_IN_NODE
from gateway.wire.protocol import Operation

__all__ = ["INTERFACE", "WITHDRAW", "RowSource", "build_row", "withdrawal_row", "envelope", "sign_in_envelope",
           "msgid_for", "platform_time", "platform_date"]

INTERFACE = {Operation.SALE: "3505", Operation.DISPENSE: "3505", Operation.SALE_RETURN: "3506",
             Operation.PURCHASE: "3503", Operation.PURCHASE_RETURN: "3504", Operation.STOCKTAKE: "3501",
             Operation.ADJUST: "3502"}
_COUNT_FIELD = {"3501": "inv_cnt", "3502": "cnt", "3503": "purc_retn_cnt", "3504": "purc_retn_cnt",
                "3505": "sel_retn_cnt", "3506": "sel_retn_cnt"}
_TIME_FIELD = {"3502": "inv_chg_time", "3503": "purc_retn_stoin_time", "3504": "purc_retn_stoin_time",
               "3505": "sel_retn_time", "3506": "sel_retn_time"}
_OPERATOR_FIELD = {"3502": "inv_chg_opter_name", "3503": "purc_retn_opter_name", "3504": "purc_retn_opter_name",
                   "3505": "sel_retn_opter_name", "3506": "sel_retn_opter_name"}
WITHDRAW = "3507"
"""Delete an upload: how a row the platform accepted is corrected."""


@dataclass(frozen=True, kw_only=True)
class RowSource:
    """Everything one platform row is made of."""

    infno: str
    bchno: str
    """fixmedins_bchno: unique per uploaded row, stable across retries."""
    codes: tuple[str, ...]
    time_ms: int
    list_code: str = ""
    name: str = ""
    lot: str = ""
    made: str = ""
    """YYMMDD from the code (GS1 AI 11, MA .M)."""
    expiry: str = ""
    """YYMMDD from the code; day 00 = end of month."""
    count: str = "1"
    split: bool = False
    docno: str = ""
    """The POS ticket number (rtal_docno)."""
    ticket_fields: Mapping[str, str] = field(default_factory=dict)
    """The ticket's `platform` object."""
    original_sale: str = ""
    """For 3506: the bchno of the sale being returned."""
    chg_type: str = ""
    """For 3502: inv_chg_type; empty: forward.defaults."""
    price: str = ""
    """For 3502: pric; empty: forward.defaults."""
    operator: str = ""
    """The operator's name for the row, over forward.defaults' opter_name."""
    memo: str = ""


def platform_time(ms: int, timezone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def platform_date(yymmdd: str) -> str:
    """YYMMDD (day 00 = end of month) as yyyy-MM-dd; empty when absent or unreadable."""
    if len(yymmdd) != 6 or not (yymmdd.isascii() and yymmdd.isdigit()):  # "²" is a digit to isdigit, not to int
        return ""
    year, month, day = 2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    if not 1 <= month <= 12:
        return ""
    if day == 0:
        following = datetime(year + month // 12, month % 12 + 1, 1)
        day = (following - datetime(year, month, 1)).days
    return f"{year:04d}-{month:02d}-{day:02d}"


def build_row(source: RowSource, values: Mapping[str, str], timezone: str) -> dict[str, object]:
    """The row of `source.infno`; `values` are the institution's configured values (forward.defaults merged)."""
    infno = source.infno
    names = {spec.name for spec in ROWS[infno]}
    row: dict[str, object] = {key: value for key, value in values.items() if key in names}
    row.update({key: value for key, value in source.ticket_fields.items() if key in names})
    computed = {
        "med_list_codg": source.list_code, "fixmedins_hilist_id": source.list_code,
        "fixmedins_hilist_name": source.name, "fixmedins_bchno": source.bchno, "manu_lotnum": source.lot,
        "manu_date": platform_date(source.made), "expy_end": platform_date(source.expiry),
        "trdn_flag": "1" if source.split else "0", "inv_chg_type": source.chg_type, "pric": source.price,
        "memo": source.memo,
    }
    row.update({key: value for key, value in computed.items() if value})
    if infno in _COUNT_FIELD:
        row[_COUNT_FIELD[infno]] = source.count
    if infno in _TIME_FIELD:
        row[_TIME_FIELD[infno]] = platform_time(source.time_ms, timezone)
    if infno == "3501":
        row["invdate"] = platform_time(source.time_ms, timezone)[:10]
    if infno in ("3505", "3506"):
        row["rtal_docno"] = source.docno
    if infno == "3506" and source.original_sale:
        row["medins_prod_sel_no"] = source.original_sale
    if infno in _OPERATOR_FIELD and source.operator:
        row[_OPERATOR_FIELD[infno]] = source.operator
    elif infno in _OPERATOR_FIELD and "opter_name" in values:
        row.setdefault(_OPERATOR_FIELD[infno], values["opter_name"])  # the operator of the envelope
    row["drugtracinfo"] = [{"drug_trac_codg": code} for code in source.codes]
    return row


def withdrawal_row(bchno: str, infno: str) -> dict[str, object]:
    """The `data` of a 3507 request deleting the accepted row `bchno` of interface `infno`.

    >>> withdrawal_row("TCL7", "3505")
    {'fixmedins_bchno': 'TCL7', 'inv_data_type': '4'}
    """
    return {"fixmedins_bchno": bchno, "inv_data_type": INV_DATA_TYPE[infno]}


def msgid_for(institution: str, request_id: int, now_ms: int, timezone: str) -> str:
    """Institution code (12, right-padded with 0) + yyyyMMddHHmmss + 4-digit sequence: the request's identity."""
    code = "".join(char for char in institution if char.isalnum())[:12].ljust(12, "0")
    stamp = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone)).strftime("%Y%m%d%H%M%S")
    return f"{code}{stamp}{request_id % 10000:04d}"


def envelope(*, infno: str, msgid: str, institution: str, rows: list[dict[str, object]], values: Mapping[str, str],
             now_ms: int, timezone: str, batch: bool) -> dict[str, object]:
    """The request body: the common envelope around one row (single interface) or a list (batch variant)."""
    body: dict[str, object] = {"infver": "V1.0", "opter_type": "1", "recer_sys_code": "FSI_LOCAL", "signtype": "",
                               "dev_no": "", "dev_safe_info": "", "cainfo": "", "sign_no": ""}
    body.update({spec.name: values[spec.name] for spec in ENVELOPE if spec.name in values})
    body.update({
        "infno": f"{infno}A" if batch else infno, "msgid": msgid, "inf_time": platform_time(now_ms, timezone),
        "fixmedins_code": institution,
    })
    body["input"] = {BATCH_NODE[infno]: rows} if batch else {ROW_NODE[infno]: rows[0]}
    return body


def sign_in_envelope(*, msgid: str, institution: str, sign_in: Mapping[str, object], values: Mapping[str, str],
                     now_ms: int, timezone: str) -> dict[str, object]:
    """The body of a 9001 sign-in: the common envelope (its sign_no empty) around `signIn` (opter_no, mac, ip)."""
    body: dict[str, object] = {"infver": "V1.0", "opter_type": "1", "recer_sys_code": "FSI_LOCAL", "signtype": "",
                               "dev_no": "", "dev_safe_info": "", "cainfo": ""}
    body.update({spec.name: values[spec.name] for spec in ENVELOPE if spec.name in values})
    body.update({"infno": SIGN_IN, "msgid": msgid, "inf_time": platform_time(now_ms, timezone),
                 "fixmedins_code": institution, "sign_no": "", "input": {SIGN_IN_NODE: dict(sign_in)}})
    return body
