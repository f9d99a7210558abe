"""The HTTP API over a real socket: tokens, every endpoint, errors, and the OpenAPI document matching the routes."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from scenario import Scenario, at, code

from gateway.faces import dashboard
from gateway.faces.api import BODY_CAPS, ROUTES, ApiServer
from gateway.metrics import Metrics
from gateway.settings import ApiSettings

READ, WRITE = "read-token", "write-token"


@pytest.fixture
def served(tmp_path):
    world = Scenario(tmp_path)
    world.counter("dev-a", "A1", "P-A")
    ready = {"broker": True}
    server = ApiServer(ApiSettings(port=0), world.store, world.rules, Metrics(world.store), read_token=READ,
                       write_token=WRITE, ready=lambda: ready,
                       institution_names={"P-A": "第一药房", "P-Z": "无设备药房"})
    server.start()
    base = f"http://127.0.0.1:{server.port}"

    def call(method, path, body=None, token=READ, kind="application/json"):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", kind)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw = answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    call.server = server
    yield world, call, ready
    server.stop()
    world.close()


def test_health_needs_no_token_and_readiness_follows_the_broker(served):
    world, call, ready = served
    assert call("GET", "/livez", token=None) == (200, {"status": "alive"})
    assert call("GET", "/readyz", token=None) == (200, {"broker": True, "database": True})
    ready["broker"] = False
    assert call("GET", "/readyz", token=None)[0] == 503


def test_tokens(served):
    world, call, ready = served
    assert call("GET", "/api/v1/devices", token=None)[0] == 401
    assert call("GET", "/api/v1/devices", token="guess")[0] == 401
    assert call("GET", "/api/v1/devices", token=WRITE)[0] == 200
    status, body = call("POST", "/api/v1/tickets", {"number": "T1"}, token=READ)
    assert status == 403 and "write token" in body["error"]


def test_tickets_rates_alerts_and_state_changes(served):
    world, call, ready = served
    ticket = {"number": "T1", "terminal": "A1", "time": at(9), "lines": [{"list_code": "XA01", "quantity": 2}]}
    assert call("POST", "/api/v1/tickets", ticket, token=WRITE) == (201, {"id": 1, "result": "stored"})
    assert call("POST", "/api/v1/tickets", ticket, token=WRITE) == (200, {"id": 1, "result": "repeated"})
    status, body = call("POST", "/api/v1/tickets", {**ticket, "lines": [{"list_code": "XA01", "quantity": 3}]},
                        token=WRITE)
    assert status == 409 and "ticket_conflict" in body["error"]
    status, body = call("POST", "/api/v1/tickets", {**ticket, "time": "soon"}, token=WRITE)
    assert status == 422 and "time" in body["error"]
    assert call("POST", "/api/v1/tickets", b"{not json", token=WRITE)[0] == 400
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    world.scan("dev-a", code(1), at(9, 2), ticket="T1")
    status, body = call("GET", "/api/v1/rates?day=2026-11-22")
    assert status == 200 and body["period"] == "2026-11-22"
    [row] = body["rates"]
    assert (row["terminal"], row["coverage"], row["duplicate_rate"]) == ("A1", 0.5, 0.5)
    assert call("GET", "/api/v1/rates?scope=institution&day=2026-11-22")[1]["rates"][0]["institution"] == "P-A"
    assert call("GET", "/api/v1/rates?window_h=0")[0] == 422
    assert call("GET", "/api/v1/rates?period=window")[1]["period"] == "last 24 h"
    assert call("GET", "/api/v1/rates?day=22.11.2026")[0] == 422
    assert call("GET", "/api/v1/rates?scope=galaxy")[0] == 422
    [alert] = call("GET", "/api/v1/alerts?state=open")[1]["alerts"]
    assert alert["type"] == "repeat_sale" and len(alert["events"]) == 2
    assert call("GET", f"/api/v1/alerts/{alert['id']}")[1]["subject"] == code(1)
    proof = call("GET", f"/api/v1/alerts/{alert['id']}/evidence")[1]
    assert [(event["device"], event["seq"], event["verdict"]) for event in proof["events"]] == [("dev-a", 1, 0),
                                                                                               ("dev-a", 2, 1)]
    assert call("GET", "/api/v1/alerts/999/evidence")[0] == 404
    status, changed = call("POST", f"/api/v1/alerts/{alert['id']}", {"state": "acknowledged", "note": "checking"},
                           token=WRITE)
    assert status == 200 and (changed["state"], changed["note"]) == ("acknowledged", "checking")
    assert call("POST", f"/api/v1/alerts/{alert['id']}", {"state": "resolved"}, token=WRITE)[1]["state"] == "resolved"
    assert call("POST", f"/api/v1/alerts/{alert['id']}", {"state": "acknowledged"}, token=WRITE)[0] == 409
    assert call("POST", "/api/v1/alerts/999", {"state": "resolved"}, token=WRITE)[0] == 404
    assert call("POST", f"/api/v1/alerts/{alert['id']}", {"nope": 1}, token=WRITE)[0] == 422


def test_catalog_devices_quarantine_metrics(served):
    world, call, ready = served
    csv = b"pid,list_code,name,pack_size\n8999999,XZ09,New,10\n"
    assert call("PUT", "/api/v1/catalog", csv, token=WRITE, kind="text/csv") == (200, {"imported": 1})
    status, body = call("PUT", "/api/v1/catalog", b"pid,name\n", token=WRITE, kind="text/csv")
    assert status == 422 and "nothing imported" in body["error"]
    [device] = call("GET", "/api/v1/devices")[1]["devices"]
    assert device["device"] == "dev-a" and device["terminal"] == "A1"
    world.ticket("A1", "T1", at(9), ("XA01", 1))
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    quarantine = call("GET", "/api/v1/quarantine")[1]
    assert quarantine["reasons"] == {"ticket_conflict": {"messages": 1, "times": 1, "bytes": 2, "dropped_messages": 0,
                                                         "dropped_times": 0}}
    assert quarantine["messages"][0]["message_hex"] == b"{}".hex()
    status, text = call("GET", "/metrics")
    assert status == 200 and 'tracegw_devices{state="never_seen"} 1.0' in text
    assert "tracegw_ack_latency_seconds_bucket" in text and "tracegw_missing_seqs 0.0" in text


def test_unknown_paths_and_methods(served):
    world, call, ready = served
    assert call("GET", "/api/v1/nothing")[0] == 404
    assert call("DELETE", "/api/v1/devices")[0] in (404, 405, 501)
    assert call("PUT", "/api/v1/devices", b"", token=WRITE)[0] == 405


def test_the_openapi_document_lists_exactly_the_routes(served):
    world, call, ready = served
    status, document = call("GET", "/openapi.json", token=None)
    assert status == 200 and document["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == {(method, path) for method, path, _, _ in ROUTES}
    for method, path, _, access in ROUTES:
        operation = document["paths"][path][method.lower()]
        assert (operation.get("security") == []) == (access == "none"), path
        assert operation.get("x-least-role") == {"none": None, "write": "admin"}.get(access, access), path


def test_the_dashboard_files_are_served_without_a_token_and_nothing_else(served):
    world, call, ready = served
    status, page = call("GET", "/dashboard/", token=None)
    assert status == 200 and "vendor/uPlot.iife.min.js" in page and "cdn" not in page.lower()
    assert call("GET", "/dashboard/labels.json", token=None)[1]["zh"]["coverage"] == "扫码核查率"
    assert call("GET", "/dashboard/vendor/uPlot.iife.min.js", token=None)[0] == 200
    served_from = Path(dashboard.__file__).parent / "dashboard_files"
    assert (served_from / ".." / "api.py").is_file()  # what an escape would reach, so the 404 is the guard's
    for escape in ("/dashboard/../api.py", "/dashboard/%2e%2e/api.py", "/dashboard/%2E%2E/%2E%2E/store/base.py",
                   "/dashboard/nothing.js"):
        assert call("GET", escape, token=None)[0] == 404
    assert call("GET", "/api/v1/dashboard/settings")[1]["coverage"] == {"good": 0.98, "warn": 0.9,
                                                                         "higher_is_better": True}


def test_the_series_fills_empty_hours_and_days(served):
    world, call, ready = served
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 5), ticket="T1")
    status, body = call("GET", "/api/v1/rates/series?terminal=A1&step=hour&day=2026-11-22")
    assert status == 200 and len(body["points"]) == 24
    nine = body["points"][9]
    assert (nine["scans"], nine["units_required"], nine["coverage"]) == (1, 2, 0.5)
    assert body["points"][8]["coverage"] is None and body["points"][8]["scans"] == 0
    days = call("GET", "/api/v1/rates/series?terminal=A1&step=day&day=2026-11-22")[1]["points"]
    assert len(days) == 1 and days[0]["scans"] == 1
    assert call("GET", "/api/v1/rates/series?step=week")[0] == 422


def test_the_server_routes_exactly_what_the_document_describes(served):
    """Every documented path answers (not 404 or 405), and every route of the app is documented or a page."""
    world, call, ready = served
    document = call("GET", "/openapi.json", token=None)[1]
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routed = {(method, route.path.replace("{id:int}", "{id}")) for route in call.server.app.routes
              for method in route.methods if method != "HEAD"}
    pages = {("GET", "/"), ("GET", "/dashboard"), ("GET", "/dashboard/{file:path}")}
    assert routed == documented | pages
    for method, path in documented:
        body = b"{}" if method != "GET" else None
        status, answer = call(method, path.replace("{id}", "1"), body, token="write-token")
        assert status not in (404, 405) or "no endpoint" not in str(answer), (method, path)


def test_documented_bounds_and_body_caps_are_the_enforced_ones(served):
    world, call, ready = served
    document = call("GET", "/openapi.json", token=None)[1]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            cap = BODY_CAPS.get((method.upper(), path))
            assert ("requestBody" in operation) == (cap is not None), path
            if cap:
                assert operation["requestBody"]["description"] == f"at most {cap} bytes (413 above)"
                assert "413" in operation["responses"]
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                if parameter["name"] != "limit":
                    continue
                assert schema["minimum"] == 1 and "400" in operation["responses"]
                table = "table=alerts&" if path == "/api/v1/export" else ""  # the one required parameter
                assert call("GET", f"{path}?{table}limit={schema['maximum']}")[0] == 200
                assert call("GET", f"{path}?{table}limit={schema['maximum'] + 1}")[0] == 400
                assert call("GET", f"{path}?{table}limit=0")[0] == 400
    before = document["paths"]["/api/v1/quarantine"]["get"]["parameters"]
    assert {parameter["name"] for parameter in before} == {"limit", "before"}


DAY_MS = 86_400_000


def test_a_range_of_days_filters_and_names(served):
    world, call, ready = served
    world.counter("dev-b", "B1", "P-B", kind="hospital")
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    world.scan("dev-a", code(2), at(9, 2) + DAY_MS)
    world.scan("dev-b", code(3), at(9, 3) + DAY_MS)
    both = call("GET", "/api/v1/rates?from=2026-11-22&to=2026-11-23")[1]
    assert both["period"] == "2026-11-22..2026-11-23" and both["end_ms"] - both["start_ms"] == 2 * DAY_MS
    assert {row["terminal"]: row["scans"] for row in both["rates"]} == {"A1": 2, "B1": 1}
    assert {row["institution"]: row["institution_name"] for row in both["rates"]} == {"P-A": "第一药房", "P-B": ""}
    second = call("GET", "/api/v1/rates?from=2026-11-23&to=2026-11-23&institution=P-A")[1]["rates"]
    assert [(row["terminal"], row["scans"], row["coverage"]) for row in second] == [("A1", 1, None)]
    hospital = call("GET", "/api/v1/rates?scope=institution&from=2026-11-22&to=2026-11-23&institution_type=hospital")
    assert [row["institution"] for row in hospital[1]["rates"]] == ["P-B"]
    for query, said in (("from=2026-11-22", "from and to go together"),
                        ("from=2026-11-23&to=2026-11-22", "must not be after"),
                        ("from=2026-11-22&to=2026-11-23&day=2026-11-22", "leave out day"),
                        ("form=2026-11-22", "unknown parameter 'form'"),
                        ("institution_type=clinic", "pharmacy or hospital"),
                        ("terminal=" + "x" * 65, "at most 64"),
                        ("from=2026-02-30&to=2026-03-01", "from must be a day YYYY-MM-DD")):
        status, body = call("GET", f"/api/v1/rates?{query}")
        assert status == 400 and said in body["error"], (query, body)
    institutions = call("GET", "/api/v1/institutions")[1]["institutions"]
    assert [(row["institution"], row["institution_name"], row["terminals"]) for row in institutions] == [
        ("P-A", "第一药房", ["A1"]), ("P-B", "", ["B1"]), ("P-Z", "无设备药房", [])]
    assert call("GET", "/api/v1/institutions?institution=P-A")[0] == 400
    devices = call("GET", "/api/v1/devices?terminal=B1")[1]["devices"]
    assert [(row["device"], row["institution_name"]) for row in devices] == [("dev-b", "")]
    assert call("GET", "/api/v1/dashboard/settings")[1]["timezone"] == "Asia/Shanghai"


def test_trends_per_terminal_over_a_range(served):
    world, call, ready = served
    world.counter("dev-b", "B1", "P-B")
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 5), ticket="T1")
    world.scan("dev-b", code(2), at(10) + DAY_MS)
    body = call("GET", "/api/v1/rates/series?by=terminal&step=hour&from=2026-11-22&to=2026-11-23")[1]
    assert body["step"] == "hour" and body["left_out"] == 0
    lines = {line["terminal"]: line for line in body["terminals"]}
    assert set(lines) == {"A1", "B1"} and lines["A1"]["institution_name"] == "第一药房"
    assert len(lines["A1"]["points"]) == 48 and lines["A1"]["points"][9]["coverage"] == 0.5
    assert lines["B1"]["points"][24 + 10]["scans"] == 1
    days = call("GET", "/api/v1/rates/series?by=terminal&step=day&from=2026-11-22&to=2026-11-23&institution=P-B")
    assert [len(line["points"]) for line in days[1]["terminals"]] == [2]
    status, said = call("GET", "/api/v1/rates/series?by=terminal&step=hour&from=2026-01-01&to=2026-11-23")
    assert status == 400 and "use step=day" in said["error"]
    assert call("GET", "/api/v1/rates/series?by=device")[0] == 400


def test_alerts_speak_chinese_and_dead_letters_too(served):
    world, call, ready = served
    world.counter("dev-b", "B1", "P-B")
    world.scan("dev-a", code(1), at(9))
    world.scan("dev-b", code(1), at(9, 1))
    [alert] = call("GET", "/api/v1/alerts?state=live")[1]["alerts"]
    assert alert["detail_zh"] == f"追溯码 {code(1)} 已在 P-A 销售，现又在 P-B 销售"
    assert alert["institution_name"] == ""
    assert call("GET", "/api/v1/alerts?terminal=A1")[1]["alerts"] == []
    assert call("GET", "/api/v1/alerts?state=shut")[0] == 400
    assert call("GET", "/api/v1/deadletters")[1] == {"dead_letters": []}


def test_exports_write_the_figures_as_the_page_shows_them(served):
    world, call, ready = served
    import csv
    import io

    import openpyxl

    world.ticket("A1", "T1", at(9), ("XA01", 3))
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    query = "day=2026-11-22&institution=P-A"
    status, text = call("GET", f"/api/v1/export?table=terminals&format=csv&{query}")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert status == 200 and rows[0][:4] == ["机构编码", "机构名称", "终端", "扫码核查率"]
    assert rows[1][:5] == ["P-A", "第一药房", "A1", "33.3%", "100.0%"]
    english = list(csv.reader(io.StringIO(call("GET", f"/api/v1/export?table=institutions&lang=en&{query}")[1]
                                          .lstrip("\ufeff"))))
    assert english[0][:3] == ["Institution code", "Institution name", "Scan coverage"]
    request = urllib.request.Request(f"http://127.0.0.1:{call.server.port}/api/v1/export?table=terminals&format=xlsx"
                                     f"&{query}", headers={"Authorization": f"Bearer {READ}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("application/vnd.openxmlformats")
        assert answer.headers["Content-Disposition"].startswith('attachment; filename="terminals-')
        sheet = openpyxl.load_workbook(io.BytesIO(answer.read())).active
    assert [cell.value for cell in sheet[2]][:5] == ["P-A", "第一药房", "A1", 0.333, 1.0]
    assert sheet["D2"].number_format == "0.0%"
    for query, said in (("table=users", "table must be one of"), ("table=alerts&format=pdf", "format must be"),
                        ("table=alerts&day=2026-11-22", "unknown parameter 'day'"),
                        ("table=terminals&sort=colour", "sort must be a column")):
        status, body = call("GET", f"/api/v1/export?{query}")
        assert status == 400 and said in body["error"], (query, body)


def test_every_filtered_endpoint_takes_what_the_document_lists_and_refuses_the_rest(served):
    world, call, ready = served
    document = call("GET", "/openapi.json", token=None)[1]
    for path in ("/api/v1/rates", "/api/v1/rates/series", "/api/v1/alerts", "/api/v1/devices",
                 "/api/v1/deadletters", "/api/v1/institutions", "/api/v1/export", "/api/v1/withdrawals",
                 "/api/v1/commands", "/api/v1/me"):
        listed = {parameter["name"] for parameter in document["paths"][path]["get"].get("parameters", [])}
        table = "table=alerts&" if path == "/api/v1/export" else ""
        status, body = call("GET", f"{path}?{table}bogus=1")
        assert status == 400 and "unknown parameter 'bogus'" in body["error"], path
        taken = body["error"].split("takes: ")[1].rstrip(")").split(", ") if listed else []
        if path == "/api/v1/export":  # the table's own parameters, a subset of what the document lists for all
            assert set(taken) <= listed and {"table", "format", "lang", "sort", "desc"} <= set(taken)
        else:
            assert set(taken) == listed - {""}, path


def test_adjustments_and_withdrawals(served):
    """3502 documents in (once per number), a withdrawal of a row the platform holds, refusals with their status."""
    world, call, ready = served
    document = {"institution": "P-A", "number": "BS-1", "time": "2026-11-22T11:00:00", "list_code": "XA01",
                "codes": [code(7)], "chg_type": "105"}
    assert call("POST", "/api/v1/adjustments", document)[0] == 403  # the read token may not write
    assert call("POST", "/api/v1/adjustments", document, token=WRITE) == (
        201, {"id": 1, "bchno": "TCA1", "result": "stored"})
    assert call("POST", "/api/v1/adjustments", document, token=WRITE)[1]["result"] == "repeated"
    assert call("POST", "/api/v1/adjustments", {**document, "codes": [code(8)]}, token=WRITE)[0] == 409
    status, refusal = call("POST", "/api/v1/adjustments", {**document, "count": "x"}, token=WRITE)
    assert status == 422 and "count" in refusal["error"]
    world.scan("dev-a", code(1), at(9))
    with world.store.transaction() as tx:  # accepted by the platform, as a settled request leaves the row
        tx.execute("UPDATE outbox SET state = 'done', bchno = 'TCE1', live_bchno = 'TCE1', uploaded = 1")
    asked = {"bchno": "TCE1", "reason": "wrong patient", "operator": "店长"}
    status, withdrawal = call("POST", "/api/v1/withdrawals", asked, token=WRITE)
    assert status == 201 and (withdrawal["state"], withdrawal["infno"], withdrawal["reason"]) == (
        "asked", "3505", "wrong patient")
    assert call("POST", "/api/v1/withdrawals", asked, token=WRITE)[0] == 409  # under way already
    assert call("POST", "/api/v1/withdrawals", {**asked, "bchno": "TCE9"}, token=WRITE)[0] == 404
    assert call("POST", "/api/v1/withdrawals", {**asked, "reason": ""}, token=WRITE)[0] == 422
    assert call("POST", "/api/v1/withdrawals", [1], token=WRITE)[0] == 422
    assert [item["bchno"] for item in call("GET", "/api/v1/withdrawals?state=asked")[1]["withdrawals"]] == ["TCE1"]
    outbox = call("GET", "/api/v1/outbox")[1]
    assert outbox["rows"]["done"] == 1 and outbox["withdrawals"] == {"asked": 1}
    assert outbox["adjustments"]["pending"] == 1
    assert call("GET", "/api/v1/withdrawals?state=gone")[0] == 400


def test_the_pos_asks_before_settling_and_hears_per_line_what_is_missing(served):
    world, call, _ = served
    world.scan("dev-a", code(1), at(9), ticket="T9")
    body = {"number": "T9", "terminal": "A1", "lines": [{"list_code": "XA01", "quantity": 2}]}
    status, answer = call("POST", "/api/v1/tickets/check", body)  # no time: now; the read role suffices
    assert status == 200 and answer["pay"] is False and answer["lines"][0]["missing"] == 1
    assert answer["lines"][0]["scanned"] == [code(1)]
    assert call("POST", "/api/v1/tickets/check", body, token=None)[0] == 401
    status, refusal = call("POST", "/api/v1/tickets/check?terminal=B1", body)
    assert status == 400 and "unknown parameter 'terminal'" in refusal["error"]
    assert call("POST", "/api/v1/tickets/check", {"number": "T9"})[0] == 422
    assert world.store.query("SELECT count(*) FROM tickets") == [(0,)]


def test_the_pos_check_of_a_stored_number_with_other_lines_is_a_conflict(served):
    """A POS that reuses a number must not hear `pay` for a basket nobody checked (a new user's attack)."""
    world, call, _ = served
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    same = {"number": "T1", "terminal": "A1", "lines": [{"list_code": "XA01", "quantity": 2}]}
    status, answer = call("POST", "/api/v1/tickets/check", same)
    assert status == 200 and answer["stored"] is True
    status, refusal = call("POST", "/api/v1/tickets/check", {**same, "lines": [{"list_code": "ZZZZ", "quantity": 50}]})
    assert status == 409 and "ticket_conflict" in refusal["error"] and "other lines" in refusal["error"]
