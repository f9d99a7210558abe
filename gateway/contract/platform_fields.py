"""Field rules of the platform's inventory and sales interfaces (docs/platform.md), and the check a request passes
before it is sent.

The 3505 sale row and the envelope are from several agreeing public sources (docs/platform.md, confidence H). The
rows of 3501, 3503, 3504 and 3506 follow public HIS clients (confidence M/L): a province's rules may add fields,
which `forward.defaults` can then fill. 3507 (delete an upload) takes one `data` object: the `fixmedins_bchno` of
the row to delete and its `inv_data_type` (1 stocktake, 2 inventory change, 3 purchase, 4 sale); it has no batch
variant and carries no codes. 9001 (sign-in) gives the `sign_no` every other request carries in its envelope:
its input `signIn` names the operator (`opter_no`), the machine's `mac` and `ip`; its output `signinoutb` holds
`sign_no` and `sign_time` (public HIS clients agree on these names, confidence M; how long a sign_no lives is
not published). The platform simulator (tools/platform_sim.py) enforces these rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Field", "ENVELOPE", "ROWS", "CODED", "ROW_NODE", "BATCH_NODE", "ERROR_NODE", "INV_DATA_TYPE",
           "SIGN_IN", "SIGN_IN_NODE", "SIGN_IN_FIELDS", "SIGN_IN_OUTPUT", "check_envelope", "check_row",
           "check_sign_in"]


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    """text (with max length), date yyyy-MM-dd, datetime yyyy-MM-dd HH:mm:ss, decimal (16,4), flag ("0"/"1"),
    flag3 ("1"-"3"), flag4 ("1"-"4")."""
    max_len: int = 0
    required: bool = True


def _text(name: str, max_len: int, required: bool = True) -> Field:
    return Field(name, "text", max_len, required)


_IDENTITY = [_text("med_list_codg", 50), _text("fixmedins_hilist_id", 30), _text("fixmedins_hilist_name", 200),
             _text("fixmedins_bchno", 30)]
_PRODUCT = [_text("manu_lotnum", 30), Field("manu_date", "date"), Field("expy_end", "date", required=False),
            Field("rx_flag", "flag")]
_SALE = [*_IDENTITY, *_PRODUCT, _text("prsc_dr_name", 50), _text("phar_name", 50), _text("phar_prac_cert_no", 50),
         _text("mdtrt_sn", 30), Field("trdn_flag", "flag"), _text("rtal_docno", 40),
         Field("sel_retn_cnt", "decimal"), Field("sel_retn_time", "datetime"), _text("sel_retn_opter_name", 50),
         _text("setl_id", 30, False), _text("psn_no", 30, False), _text("psn_name", 50, False),
         _text("rxno", 40, False), Field("finl_trns_pric", "decimal", required=False), _text("memo", 500, False)]
_PURCHASE = [*_IDENTITY, *_PRODUCT, _text("spler_name", 200), _text("dynt_no", 30, False),
             _text("prodentp_name", 200), _text("aprvno", 100), Field("purc_retn_cnt", "decimal"),
             Field("purc_retn_stoin_time", "datetime"), _text("purc_retn_opter_name", 50),
             Field("finl_trns_pric", "decimal", required=False), _text("memo", 500, False)]

ROWS: dict[str, list[Field]] = {
    "3501": [*_IDENTITY, *_PRODUCT, Field("invdate", "date"), Field("inv_cnt", "decimal"), _text("memo", 500, False)],
    "3502": [*_IDENTITY, *_PRODUCT, _text("inv_chg_type", 6), Field("pric", "decimal"), Field("cnt", "decimal"),
             Field("trdn_flag", "flag"), Field("inv_chg_time", "datetime"), _text("inv_chg_opter_name", 50),
             _text("memo", 500, False)],
    "3503": _PURCHASE,
    "3504": _PURCHASE,
    "3505": _SALE,
    "3506": [*_SALE, _text("medins_prod_sel_no", 30)],
    "3507": [_text("fixmedins_bchno", 30), Field("inv_data_type", "flag4")],
}
"""Interface number -> its row's fields; every row of 3501-3506 also carries `drugtracinfo: [{"drug_trac_codg"}]`."""
CODED = ("3501", "3502", "3503", "3504", "3505", "3506")
"""The interfaces whose rows carry trace codes (and have batch variants)."""
ROW_NODE = {"3501": "invinfo", "3502": "invinfo", "3503": "purcinfo", "3504": "purcinfo", "3505": "selinfo",
            "3506": "selinfo", "3507": "data"}
INV_DATA_TYPE = {"3501": "1", "3502": "2", "3503": "3", "3504": "3", "3505": "4", "3506": "4"}
"""3507's inv_data_type of a row of each interface. docs/platform.md names four types; that purchase returns share
type 3 with purchases and sale returns type 4 with sales (as they share the row node) is our reading."""
BATCH_NODE = {infno: f"{ROW_NODE[infno]}Detail" for infno in CODED}
"""Input node of the batch variants (3501A-3506A)."""
ERROR_NODE = {infno: f"{ROW_NODE[infno]}ErrDetail" for infno in CODED}
"""Output node listing per-row failures of a batch variant. The sale list's real name is not published (open):
`selinfoErrDetail` here, configurable as forward.sale_error_node."""

SIGN_IN = "9001"
SIGN_IN_NODE = "signIn"
SIGN_IN_OUTPUT = "signinoutb"
"""Output node of 9001: {"sign_no", "sign_time"}."""
SIGN_IN_FIELDS = [_text("opter_no", 30), _text("mac", 20), _text("ip", 15)]

ENVELOPE = [
    _text("infno", 5), _text("msgid", 30), _text("mdtrtarea_admvs", 6), _text("insuplc_admdvs", 6),
    _text("recer_sys_code", 10), _text("dev_no", 100, False), _text("dev_safe_info", 2000, False),
    _text("cainfo", 1024, False), _text("signtype", 10, False), _text("infver", 6), Field("opter_type", "flag3"),
    _text("opter", 30), _text("opter_name", 50), Field("inf_time", "datetime"), _text("fixmedins_code", 12),
    _text("fixmedins_name", 200), _text("sign_no", 30, False),
]
_FORMATS = {
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "datetime": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"),
    "decimal": re.compile(r"\d{1,12}(\.\d{1,4})?"),
    "flag": re.compile(r"[01]"),
    "flag3": re.compile(r"[123]"),
    "flag4": re.compile(r"[1234]"),
}
_MSGID = re.compile(r"[0-9A-Za-z]{12}\d{14}\d{4}")


def _problems(values: dict[str, object], fields: list[Field], where: str) -> list[str]:
    found = []
    for spec in fields:
        value = values.get(spec.name)
        if value is None or value == "":
            if spec.required:
                found.append(f"{where}{spec.name} is mandatory and missing")
            continue
        text = str(value)
        if spec.kind == "text":
            if not isinstance(value, str):
                found.append(f"{where}{spec.name} must be text")
            elif len(text) > spec.max_len:
                found.append(f"{where}{spec.name} is {len(text)} characters, at most {spec.max_len}")
        elif not _FORMATS[spec.kind].fullmatch(text):
            found.append(f"{where}{spec.name} {text!r} is not a {spec.kind}")
    return found


def check_envelope(envelope: dict[str, object]) -> list[str]:
    """Every problem of the envelope (without `input`), empty when it may be sent."""
    found = _problems(envelope, ENVELOPE, "")
    if envelope.get("infno") not in {*ROWS, *(f"{number}A" for number in CODED), SIGN_IN}:
        found.append(f"infno {envelope.get('infno')!r} is not an inventory/sales interface nor sign-in")
    if envelope.get("msgid") and not _MSGID.fullmatch(str(envelope["msgid"])):
        found.append("msgid must be the institution code (12) + yyyyMMddHHmmss + a 4-digit sequence")
    return found


def check_row(infno: str, row: dict[str, object]) -> list[str]:
    """Every problem of one row of interface `infno` (3501-3507), empty when it may be sent."""
    found = _problems(row, ROWS[infno], "")
    if infno not in CODED:
        return found
    codes = row.get("drugtracinfo")
    if not isinstance(codes, list) or not codes:
        found.append("drugtracinfo must list at least one drug_trac_codg")
    else:
        for item in codes:
            code = item.get("drug_trac_codg") if isinstance(item, dict) else None
            if not isinstance(code, str) or not 1 <= len(code) <= 100:
                found.append(f"drug_trac_codg {code!r} must be 1-100 characters")
    return found


def check_sign_in(data: dict[str, object]) -> list[str]:
    """Every problem of a 9001 `signIn` object, empty when it may be sent."""
    return _problems(data, SIGN_IN_FIELDS, "signIn.")
