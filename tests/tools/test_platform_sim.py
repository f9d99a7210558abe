"""The platform simulator: field rules enforced, repeated msgids answered once, doubles counted, faults injected."""

import json
import subprocess
import sys
import time

import httpx
import pytest

from tools.platform_sim import Faults, PlatformSim

ROW = {"med_list_codg": "XA01", "fixmedins_hilist_id": "XA01", "fixmedins_hilist_name": "A", "fixmedins_bchno": "B1",
       "prsc_dr_name": "-", "phar_name": "P", "phar_prac_cert_no": "C", "mdtrt_sn": "M", "manu_lotnum": "L",
       "manu_date": "2026-01-01", "rx_flag": "0", "trdn_flag": "0", "rtal_docno": "T1", "sel_retn_cnt": "1",
       "sel_retn_time": "2026-11-22 10:00:00", "sel_retn_opter_name": "O",
       "drugtracinfo": [{"drug_trac_codg": "81234560000000000001"}]}
ENVELOPE = {"infno": "3505", "msgid": "P44030000001202611221000000001", "mdtrtarea_admvs": "440300",
            "insuplc_admdvs": "440300", "recer_sys_code": "FSI_LOCAL", "infver": "V1.0", "opter_type": "1",
            "opter": "1", "opter_name": "O", "inf_time": "2026-11-22 10:00:00", "fixmedins_code": "P44030000001",
            "fixmedins_name": "F"}


@pytest.fixture
def sim(tmp_path):
    with PlatformSim(tmp_path / "sim.sqlite3", Faults(), seed=5) as running:
        yield running


def post(sim, body, timeout=5):
    return httpx.post(sim.url + "/fsi/api/rsfComIfsService/callService", content=json.dumps(body), timeout=timeout)


def test_a_valid_sale_is_accepted_once_per_msgid_and_a_new_msgid_is_a_double(sim):
    first = post(sim, {**ENVELOPE, "input": {"selinfo": ROW}}).json()
    assert first["infcode"] == 0 and first["output"]["result"]["retRslt"] == "1"
    assert post(sim, {**ENVELOPE, "input": {"selinfo": ROW}}).json() == first
    assert sim.counts()["accepted_rows"] == 1 and sim.counts()["replays"] == 1
    post(sim, {**ENVELOPE, "msgid": "P44030000001202611221000000002", "input": {"selinfo": ROW}})
    assert sim.counts()["doubles"] == 1


def test_field_rules_and_batch_errors(sim):
    bad_envelope = post(sim, {**ENVELOPE, "fixmedins_code": "X" * 13, "input": {"selinfo": ROW}}).json()
    assert bad_envelope["infcode"] == -1 and "fixmedins_code is 13 characters" in bad_envelope["err_msg"]
    rows = [ROW, {**ROW, "fixmedins_bchno": "B2", "sel_retn_time": "22/11/2026"}, {**ROW, "fixmedins_bchno": "B3",
                                                                                   "drugtracinfo": []}]
    answer = post(sim, {**ENVELOPE, "infno": "3505A", "msgid": "P44030000001202611221000000003",
                        "input": {"selinfoDetail": rows}}).json()
    errors = {item["fixmedins_bchno"]: item["err_msg"] for item in answer["output"]["selinfoErrDetail"]}
    assert answer["output"]["result"]["retRslt"] == "0" and set(errors) == {"B2", "B3"}
    assert "not a datetime" in errors["B2"] and "drugtracinfo" in errors["B3"]
    assert sim.counts()["accepted_rows"] == 1


def test_faults(sim):
    sim.set_faults({"error_rate": 1.0})
    assert post(sim, {**ENVELOPE, "input": {"selinfo": ROW}}).status_code == 500
    sim.set_faults({"error_rate": 0.0, "drop_rate": 1.0})
    with pytest.raises(httpx.HTTPError):
        post(sim, {**ENVELOPE, "input": {"selinfo": ROW}})
    assert sim.counts()["accepted_rows"] == 1  # processed although the answer was lost
    sim.set_faults({"drop_rate": 0.0, "timeout_rate": 1.0, "hang_ms": 1000})
    with pytest.raises(httpx.TimeoutException):
        post(sim, {**ENVELOPE, "msgid": "P44030000001202611221000000009", "input": {"selinfo": ROW}}, timeout=0.3)
    sim.set_faults({"timeout_rate": 0.0, "outage_start_s": 0, "outage_s": 60})
    assert post(sim, {**ENVELOPE, "input": {"selinfo": ROW}}).status_code == 503
    with pytest.raises(ValueError, match="unknown fault"):
        sim.set_faults({"meteor": 1})
    counts = sim.counts()
    assert counts["fault_error"] == counts["fault_drop"] == counts["fault_timeout"] == counts["fault_outage"] == 1


def test_the_command_line_starts_and_refuses_a_bad_outage(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tools.platform_sim", "--outage", "soon"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2 and "START:LENGTH" in done.stderr
    process = subprocess.Popen([sys.executable, "-m", "tools.platform_sim", "--database", str(tmp_path / "s.db"),
                                "--error-rate", "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("platform simulator on http://127.0.0.1:")
        url = line.split()[3]
        assert httpx.get(url + "/_sim/faults").json()["error_rate"] == 0.5
    finally:
        process.terminate()
        process.wait(10)


def test_a_withdrawal_takes_a_row_off_the_per_line_totals_and_a_code_sold_twice_is_counted(sim):
    whole = {**ROW, "drugtracinfo": [{"drug_trac_codg": "81234560000000000001"},
                                     {"drug_trac_codg": "81234560000000000002"}], "sel_retn_cnt": "2"}
    assert post(sim, {**ENVELOPE, "input": {"selinfo": whole}}).json()["output"]["result"]["retRslt"] == "1"
    [(key, total)] = sim.sale_totals().items()
    assert key == ("P44030000001", "T1", "XA01") and (total.sold, total.codes) == (2, (
        "81234560000000000001", "81234560000000000002"))
    again = {**ROW, "fixmedins_bchno": "B2"}  # a code the platform holds as sold, sold again
    post(sim, {**ENVELOPE, "msgid": "P44030000001202611221000000002", "input": {"selinfo": again}})
    assert sim.counts()["code_doubles"] == 1 and sim.sale_totals()[key].sold == 3
    withdraw = {**ENVELOPE, "infno": "3507", "msgid": "P44030000001202611221000000003",
                "input": {"data": {"fixmedins_bchno": "B2", "inv_data_type": "4"}}}
    assert post(sim, withdraw).json()["output"]["result"]["retRslt"] == "1"
    assert sim.sale_totals()[key].sold == 2 and sim.counts()["live_rows"] == 1
    again_withdraw = post(sim, {**withdraw, "msgid": "P44030000001202611221000000004"}).json()
    result = again_withdraw["output"]["result"]
    assert result["retRslt"] == "0" and "B2" in result["msgRslt"]
    wrong_type = {**withdraw, "msgid": "P44030000001202611221000000005",
                  "input": {"data": {"fixmedins_bchno": "B1", "inv_data_type": "3"}}}
    assert post(sim, wrong_type).json()["output"]["result"]["retRslt"] == "0"  # B1 is a sale, not a purchase
    assert post(sim, {**withdraw, "infno": "3507A", "msgid": "P44030000001202611221000000006"}).json()["infcode"] == -1
    returned = {**ROW, "fixmedins_bchno": "R1", "medins_prod_sel_no": "B1"}
    post(sim, {**ENVELOPE, "infno": "3506", "msgid": "P44030000001202611221000000007", "input": {"selinfo": returned}})
    assert sim.sale_totals()[key].returned == 1 and sim.counts().get("returns_unmatched", 0) == 0
    post(sim, {**withdraw, "msgid": "P44030000001202611221000000008",
               "input": {"data": {"fixmedins_bchno": "B1", "inv_data_type": "4"}}})
    assert sim.counts()["orphaned_returns"] == 1
    lines = httpx.get(sim.url + "/_sim/lines").json()
    assert lines == [{"institution": "P44030000001", "rtal_docno": "T1", "med_list_codg": "XA01", "sold": "0",
                      "returned": "1", "codes": []}]


SIGN_IN = {**ENVELOPE, "infno": "9001", "msgid": "P44030000001202611221000009001",
           "input": {"signIn": {"opter_no": "0001", "mac": "00-11-22-33-44-55", "ip": "10.0.0.2"}}}


def test_sign_in_gives_the_one_live_sign_no_and_the_others_are_refused(tmp_path):
    with PlatformSim(tmp_path / "sim.sqlite3", Faults(sign_in_required=True), seed=5) as sim:
        sale = {**ENVELOPE, "input": {"selinfo": ROW}}
        missing = post(sim, sale).json()
        assert missing["infcode"] == -1 and "未签到" in missing["err_msg"]
        first = post(sim, SIGN_IN).json()["output"]["signinoutb"]["sign_no"]
        second = post(sim, {**SIGN_IN, "msgid": "P44030000001202611221000009002"}).json()["output"]["signinoutb"]
        for number, sign_no in enumerate((first, "SN-made-up", second["sign_no"])):
            answer = post(sim, {**sale, "msgid": f"P4403000000120261122100000100{number}", "sign_no": sign_no}).json()
            assert (answer["infcode"] == 0) == (sign_no == second["sign_no"]), (sign_no, answer)
        other = post(sim, {**sale, "msgid": "P44030000001202611221000001009", "fixmedins_code": "P44030000002",
                           "sign_no": second["sign_no"]}).json()
        assert other["infcode"] == -1  # a sign_no is its institution's only
        assert sim.expire_sign_ins() == 1
        late = post(sim, {**sale, "msgid": "P44030000001202611221000001010", "sign_no": second["sign_no"]}).json()
        assert late["infcode"] == -1 and "已过期" in late["err_msg"]
        counts = sim.counts()
    assert counts["sign_ins"] == 2 and counts["refused_sign_no"] == 5 and counts["accepted_rows"] == 1


def test_a_sign_no_expires_after_its_lifetime(tmp_path):
    with PlatformSim(tmp_path / "sim.sqlite3", Faults(sign_ttl_s=0.3), seed=5) as sim:
        sign_no = post(sim, SIGN_IN).json()["output"]["signinoutb"]["sign_no"]
        assert post(sim, {**ENVELOPE, "sign_no": sign_no, "input": {"selinfo": ROW}}).json()["infcode"] == 0
        time.sleep(0.4)
        assert post(sim, {**ENVELOPE, "msgid": "P44030000001202611221000000077", "sign_no": sign_no,
                          "input": {"selinfo": {**ROW, "fixmedins_bchno": "B9"}}}).json()["infcode"] == -1
