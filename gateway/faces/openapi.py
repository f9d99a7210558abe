"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json (a test keeps it equal to api.ROUTES)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["document"]


def _query(name: str, description: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind, **extra}}


def _limit(most: int) -> dict[str, Any]:
    return _query("limit", f"at most this many (1-{most}; others are refused with 400)", "integer", minimum=1,
                  maximum=most, default=100)


_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**63 - 1},
       "description": "a larger number is no item: 404"}
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_AUTH_ERRORS = {"401": _ERROR, "403": _ERROR, "503": {**_ERROR, "description": "busy: try again (Retry-After)"}}
_BODY_ERRORS = {"400": _ERROR, "408": _ERROR, "411": _ERROR, "413": {**_ERROR, "description": "body over the cap"}}


def _json(ref: str, description: str = "ok") -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_ARRAY_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}


def _listing(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "array", "items": item}}}


def _open(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": [], "responses": responses, **extra}


def _guarded(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An operation that needs a token; one with a body also answers the body's refusals."""
    body_errors = _BODY_ERRORS if "requestBody" in extra else {}
    return {"summary": summary, "responses": {**responses, **_AUTH_ERRORS, **body_errors}, **extra}


_NAME = {"type": "string", "description": "the institution's name (forward.institutions.<code>.fixmedins_name); "
                                         "empty when none is configured"}
_RATE_FIELDS = {
    "scope": {"type": "string"}, "institution": {"type": "string"}, "terminal": {"type": "string"},
    "institution_name": _NAME,
    "period": {"type": "string"},
    "coverage": {"type": ["number", "null"], "description": "扫码核查率: units_covered / units_required"},
    "valid_scan_rate": {"type": ["number", "null"], "description": "valid_scans / scans"},
    "duplicate_rate": {"type": ["number", "null"], "description": "药品销售重复率: duplicate_sales / sale_scans"},
    "consistency_error_rate": {"type": ["number", "null"],
                               "description": "单据一致性错误率: mismatched_scans / matched_scans"},
    "upload_rate": {"type": ["number", "null"], "description": "上传率: uploaded / stored"},
    "swap_rate": {"type": ["number", "null"], "description": (
        "串换率 (ours): swapped_scans / matched_scans, scans settled on a ticket with a code that cannot be the "
        "billed pack: another product's, or one already sold")},
    "missing_seqs": {"type": "integer", "description": "seqs devices wrote that are not stored (device loss)"},
    **{name: {"type": "integer"} for name in ("scans", "valid_scans", "sale_scans", "duplicate_sales", "matched_scans",
                                              "mismatched_scans", "units_required", "units_covered", "stored",
                                              "uploaded", "swapped_scans")},
}
_ALERT_FIELDS = {
    "id": {"type": "integer"}, "type": {"type": "string"},
    "severity": {"type": "string", "enum": ["warning", "high", "critical"]},
    "state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
    "institution": {"type": "string"}, "terminal": {"type": "string"}, "device": {"type": "string"},
    "subject": {"type": "string"}, "detail": {"type": "string"}, "count": {"type": "integer"},
    "detail_zh": {"type": "string", "description": "the detail in Chinese (the English one when no wording knows it)"},
    "institution_name": _NAME,
    "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"}, "changed_ms": {"type": "integer"},
    "note": {"type": "string"},
    "changed_by": {"type": "string", "description": "who last moved the state: a user's name, cli:<login>, or "
                                                    "gateway (resolved by itself)"},
    "events": {"type": "array", "items": {"type": "integer"}, "description": "evidence: stored event ids"},
    "tickets": {"type": "array", "items": {"type": "integer"}, "description": "evidence: ticket ids"},
}
_QUARANTINE_FIELDS = {
    **{name: {"type": "integer"} for name in ("id", "received_ms", "last_ms", "times")},
    **{name: {"type": "string"} for name in ("topic", "device", "reason", "detail")},
    "message_bytes": {"type": "integer", "description": "length of the refused message"},
    "message_hex": {"type": "string", "description": "the message's bytes in hex (its first 64 KiB)"},
    "message_truncated": {"type": "boolean", "description": "message_hex holds only the first 64 KiB"},
}
_COMMAND_FIELDS = {
    "id": {"type": "integer", "description": "row of the audit log"},
    "device": {"type": "string"},
    "command_id": {"type": "integer", "description": "the id signed into the command (the device's replay guard)"},
    "kind": {"enum": ["time", "mode", "resend", "config", "reboot"]},
    "argument": {"description": "as sent: a number, a map of settings, or null"},
    "issued_by": {"type": "string", "description": "the user's name, or cli:<login>"},
    "issued_ms": {"type": "integer"},
    "state": {"enum": ["queued", "sent", "answered", "expired", "unanswered"],
              "description": "expired: queued while no gateway ran (not sent after 60 s); unanswered: no answer "
                             "within 30 s of sending (a late answer still lands)"},
    "sent_ms": {"type": "integer"}, "answer_ms": {"type": "integer"},
    "result": {"type": "string", "description": "applied, or refused: out of range | replayed id | replay guard lost"},
    "result_zh": {"type": "string", "description": "the result in Chinese"},
    "answer": {"description": "what the device reports: its time (time), mode, first seq resent (resend), the "
                              "settings in effect (config); null otherwise"},
    "device_last_id": {"type": "integer", "description": "the last command id the device had accepted"},
}
_TICKET = {
    "type": "object", "required": ["number", "terminal", "time", "lines"], "additionalProperties": False,
    "properties": {
        "number": {"type": "string", "maxLength": 40, "description": "POS document number (rtal_docno)"},
        "terminal": {"type": "string", "maxLength": 64},
        "time": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
                 "description": "ISO 8601 (no offset: the configured zone) or ms since the epoch"},
        "institution": {"type": "string", "description": "needed when no registered device serves the terminal"},
        "platform": {"type": "object", "additionalProperties": {"type": "string"},
                     "description": "sale fields for the platform row only the POS knows: mdtrt_sn, setl_id, psn_no, "
                                    "psn_name, prsc_dr_name, phar_name, phar_prac_cert_no, rx_flag, rxno, "
                                    "medins_prod_sel_no, memo"},
        "lines": {"type": "array", "minItems": 1, "maxItems": 200, "items": {
            "type": "object", "required": ["list_code", "quantity"], "additionalProperties": False,
            "properties": {"list_code": {"type": "string", "maxLength": 50},
                           "quantity": {"type": "integer", "minimum": 1,
                                        "description": "packs (whole-pack line) or units (split line)"},
                           "split": {"type": "boolean", "default": False}}}},
    },
}


_ADJUSTMENT = {
    "type": "object", "required": ["institution", "number", "time", "list_code", "codes"],
    "additionalProperties": False,
    "properties": {
        "institution": {"type": "string", "maxLength": 12},
        "number": {"type": "string", "maxLength": 40, "description": "the document number, unique per institution"},
        "list_code": {"type": "string", "maxLength": 50, "description": "med_list_codg"},
        "codes": {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": True,
                  "items": {"type": "string", "maxLength": 100}, "description": "the trace codes (drugtracinfo)"},
        "count": {"type": ["string", "integer"], "description": "cnt: packs, or units when split (default: "
                  "the number of codes)"},
        "split": {"type": "boolean", "default": False},
        "time": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
                 "description": "inv_chg_time: ISO 8601 (no offset: the configured zone) or ms since the epoch"},
        "chg_type": {"type": "string", "maxLength": 6,
                     "description": "inv_chg_type (default forward.defaults; the code list is not published)"},
        "price": {"type": ["string", "number"], "description": "pric (default forward.defaults)"},
        "operator": {"type": "string", "maxLength": 50, "description": "inv_chg_opter_name"},
        "memo": {"type": "string", "maxLength": 500},
    },
}
_WITHDRAWAL_FIELDS = {
    **{name: {"type": "integer"} for name in ("id", "asked_ms", "changed_ms")},
    **{name: {"type": "string"} for name in ("bchno", "institution", "infno", "reason", "operator", "error")},
    "state": {"enum": ["asked", "sending", "done", "refused"]},
}


def document(body_caps: Mapping[tuple[str, str], int] | None = None,
             access: Mapping[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """The description; `body_caps` ((method, path) -> bytes, the API's BODY_CAPS) go into the request bodies,
    `access` ((method, path) -> the route's least role, api.ROUTES) into each operation's `x-least-role`."""
    described = _described()
    for (method, path), cap in (body_caps or {}).items():
        described["paths"][path][method.lower()]["requestBody"]["description"] = f"at most {cap} bytes (413 above)"
    for (method, path), role in (access or {}).items():
        if role != "none":
            described["paths"][path][method.lower()]["x-least-role"] = "admin" if role == "write" else role
    return described


def _described() -> dict[str, Any]:
    rates_parameters = [
        _query("scope", "terminal or institution", enum=["terminal", "institution"], default="terminal"),
        _query("day", "calendar day YYYY-MM-DD in the configured zone (default today)", format="date"),
        _query("window_h", "rolling window of whole hours ending now (instead of day)", "integer", minimum=1),
        _query("period", "window: the configured rolling window (rules.rolling_window_h)", enum=["window"]),
        _query("institution", "only this institution"), _query("terminal", "only this terminal"),
        _query("region", "only institutions of this region"),
        _query("institution_type", "pharmacy or hospital", enum=["pharmacy", "hospital"]),
        _query("from", "first day YYYY-MM-DD of a range in the configured zone (with to; not with day or window_h)",
               format="date"),
        _query("to", "last day YYYY-MM-DD of the range, included (at most 366 days from `from`)", format="date"),
    ]
    filters_note = ("Any parameter not listed is refused with 400, and so is a filter longer than 64 characters or "
                    "not printable: a misspelt filter never widens the answer.")
    export_parameters = [
        {**_query("table", "which table", enum=["institutions", "terminals", "alerts", "devices", "deadletters",
                                                "commands"]), "required": True},
        _query("format", "csv (UTF-8 with BOM) or xlsx", enum=["csv", "xlsx"], default="csv"),
        _query("lang", "labels, words and date layout", enum=["zh", "en"], default="zh"),
        _query("sort", "a column's field, as a click on its head sorts the page (missing values first)"),
        _query("desc", "1: descending", enum=["0", "1"], default="0"),
        *rates_parameters[1:], _query("state", "alerts: as /api/v1/alerts"), _query("type", "alerts: alert type"),
        _query("device", "commands: only this device"), _limit(1000),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "trace-gateway", "version": "1",
                 "description": "Scan events, supervision rates and alerts of the traceability-code gateway."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a named user's token (trace-gateway users add); each "
                                                          "operation's x-least-role says the least role it "
                                                          "needs: read, acknowledge or admin"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
                "Rates": {"type": "object", "properties": {
                    "period": {"type": "string"}, "start_ms": {"type": "integer"}, "end_ms": {"type": "integer"},
                    "rates": {"type": "array", "items": {"type": "object", "properties": _RATE_FIELDS}}}},
                "Alert": {"type": "object", "properties": _ALERT_FIELDS},
                "Alerts": _listing("alerts", {"$ref": "#/components/schemas/Alert"}),
                "Devices": _listing("devices", {"type": "object"}),
                "Quarantine": {"type": "object", "properties": {
                    "reasons": {"type": "object", "description": (
                        "per reason: messages (rows held), times (copies received), bytes (held), dropped_messages "
                        "and dropped_times (rows dropped to keep the bounds, counts kept)")},
                    "messages": {"type": "array", "items": {"type": "object", "properties": _QUARANTINE_FIELDS}},
                    "next_before": {"type": ["integer", "null"],
                                    "description": "pass as `before` for the next page; null: this was the last"},
                    "truncated": {"type": "boolean", "description": "the byte cap (1 MiB), not limit, ended the page"},
                }},
                "Ticket": _TICKET,
                "TicketToCheck": {**_TICKET, "required": ["number", "terminal", "lines"]},
                "DeadLetters": _listing("dead_letters", {"type": "object", "properties": {
                    **{name: {"type": "string" if name in ("institution", "infno", "bchno", "error", "code", "device")
                              else "integer"} for name in ("id", "event_id", "institution", "infno", "bchno", "error",
                                                           "changed_ms", "code", "device", "seq")},
                    "error_zh": {"type": "string", "description": "the reason with its English opening in Chinese"},
                    "institution_name": _NAME}}),
                "Institutions": _listing("institutions", {"type": "object", "properties": {
                    "institution": {"type": "string"}, "institution_name": _NAME,
                    "institution_type": {"type": "string"}, "region": {"type": "string"},
                    "terminals": {"type": "array", "items": {"type": "string"}}}}),
                "Adjustment": _ADJUSTMENT,
                "Withdrawal": {"type": "object", "properties": _WITHDRAWAL_FIELDS},
                "Withdrawals": _listing("withdrawals", {"$ref": "#/components/schemas/Withdrawal"}),
                "Command": {"type": "object", "properties": _COMMAND_FIELDS},
                "Commands": _listing("commands", {"$ref": "#/components/schemas/Command"}),
                "TicketCheck": {"type": "object", "properties": {
                    "number": {"type": "string"}, "terminal": {"type": "string"},
                    "stored": {"type": "boolean", "description": "the ticket was stored already: its own matching"},
                    "pay": {"type": "boolean", "description": "无码不付: true when every line requiring a code has "
                                                              "all of them and no scan was a duplicate, another "
                                                              "product or an unknown one"},
                    "lines": {"type": "array", "items": {"type": "object", "properties": {
                        "line_no": {"type": "integer"}, "list_code": {"type": "string"},
                        "quantity": {"type": "integer"}, "split": {"type": "boolean"},
                        "required": {"type": "boolean", "description": "the product requires a code"},
                        "needed": {"type": "integer", "description": "codes the line needs (1 on a split line)"},
                        "scanned": {"type": "array", "items": {"type": "string"}, "description": "codes that fill it"},
                        "missing": {"type": "integer", "description": "units no code was scanned for"},
                        "duplicates": {"type": "array", "items": {"type": "string"},
                                       "description": "codes scanned for it that were sold before"},
                        "mismatches": {"type": "array", "items": {"type": "string"},
                                       "description": "codes of products the ticket does not bill, scanned in its "
                                                      "place (串换)"},
                        "unknown": {"type": "array", "items": {"type": "string"},
                                    "description": "codes of products the catalog does not know"}}}},
                    "extra": {"type": "array", "items": {"type": "string"},
                              "description": "duplicates or other products scanned for the ticket beyond its lines"},
                }},
                "TicketResult": {"type": "object", "properties": {"id": {"type": "integer"},
                                                                  "result": {"enum": ["stored", "repeated"]}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/livez": {"get": _open("the process answers", {"200": {"description": "alive"}})},
            "/readyz": {"get": _open("database reachable and broker connected",
                                     {"200": {"description": "ready"}, "503": {"description": "not ready"}})},
            "/openapi.json": {"get": _open("this document", {"200": {"description": "OpenAPI 3.1"}})},
            "/metrics": {"get": _guarded("Prometheus metrics", {"200": {"description": "text exposition format"}})},
            "/api/v1/rates": {"get": _guarded("rates per terminal or institution", {"200": _json("Rates"),
                                              "400": _ERROR, "422": _ERROR}, parameters=rates_parameters,
                                              description=filters_note)},
            "/api/v1/rates/series": {"get": _guarded(
                "coverage and scan volume per hour or per day; by=terminal: one series per terminal (the busiest 12 "
                "of the filters; `left_out` counts the others; hourly over at most 31 days)",
                {"200": {"description": "points, oldest first (by=terminal: `terminals`, each with its points)"},
                 "400": _ERROR, "422": _ERROR},
                parameters=[_query("step", "hour or day", enum=["hour", "day"], default="hour"),
                            _query("by", "all: one series; terminal: one per terminal", enum=["all", "terminal"],
                                   default="all"),
                            *rates_parameters[1:]], description=filters_note)},
            "/api/v1/dashboard/settings": {"get": _guarded(
                "the thresholds the dashboard colours rates against, the zone it shows times in, and who is signed in",
                {"200": {"description": "per rate: good, warn; backlog_warn; timezone (IANA name); user and role: "
                                        "the token's user (as /api/v1/me)"}})},
            "/api/v1/institutions": {"get": _guarded(
                "institutions of the registered devices and of forward.institutions: code, name, type, region, "
                "terminals (the dashboard's filter choices)", {"200": _json("Institutions"), "400": _ERROR})},
            "/api/v1/export": {"get": _guarded(
                "a dashboard table as a file, its figures as the page shows them (rates in % with one decimal, "
                "times in the configured zone); the table's own filters apply, others are refused",
                {"200": {"description": "attachment", "content": {"text/csv": {}, XLSX: {}}}, "400": _ERROR,
                 "422": _ERROR}, parameters=export_parameters)},
            "/api/v1/alerts": {"get": _guarded("alerts, newest first", {"200": _json("Alerts"), "400": _ERROR},
                                               parameters=[
                _query("state", "open, acknowledged, resolved, or live (open and acknowledged)",
                       enum=["open", "acknowledged", "resolved", "live"]),
                _query("type", "alert type"), _query("institution", "only this institution"),
                _query("terminal", "only this terminal"), _limit(1000)])},
            "/api/v1/alerts/{id}": {
                "get": _guarded("one alert", {"200": _json("Alert"), "404": _ERROR}, parameters=[_ID]),
                "post": _guarded("acknowledge or resolve", {"200": _json("Alert"), "404": _ERROR, "409": _ERROR,
                                                            "422": _ERROR}, parameters=[_ID], requestBody={
                    "required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["state"], "properties": {
                            "state": {"enum": ["acknowledged", "resolved"]}, "note": {"type": "string"}}}}}}),
            },
            "/api/v1/alerts/{id}/evidence": {"get": _guarded(
                "the events (device, seq, code, time, verdict) and tickets (with lines) an alert points to",
                {"200": {"description": "events and tickets"}, "404": _ERROR}, parameters=[_ID])},
            "/api/v1/devices": {"get": _guarded("devices with their last status", {"200": _json("Devices"),
                                                                                   "400": _ERROR},
                                                parameters=[_query("institution", "only this institution"),
                                                            _query("terminal", "only this terminal")])},
            "/api/v1/quarantine": {"get": _guarded(
                "refused messages with their bytes, newest first, paged: at most `limit` rows and 1 MiB",
                {"200": _json("Quarantine"), "400": _ERROR},
                parameters=[_limit(100), _query("before", "only ids below this: the previous page's next_before",
                                                "integer", minimum=1)])},
            "/api/v1/tickets": {"post": _guarded(
                "take a POS sale ticket", {"201": _json("TicketResult", "stored"),
                                           "200": _json("TicketResult", "already stored with the same content"),
                                           "409": _ERROR, "422": _ERROR},
                requestBody={"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Ticket"}}}})},
            "/api/v1/tickets/check": {"post": _guarded(
                "无码不付: before settling, per line the codes scanned, the units missing one, duplicates and "
                "mismatches (writes nothing; `time` may be left out: now)",
                {"200": _json("TicketCheck"), "400": {**_ERROR, "description": "a query parameter (it takes none)"},
                 "422": _ERROR},
                requestBody={"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/TicketToCheck"}}}})},
            "/api/v1/outbox": {"get": _guarded(
                "outbox rows by state (pending, sending, done, dead, withheld, withdrawn; retrying: sending rows "
                "whose request failed once), the oldest unsettled, requests, adjustments and withdrawals by state",
                {"200": {"description": "counts"}})},
            "/api/v1/adjustments": {"post": _guarded(
                "take an inventory change document (3502), uploaded once", {
                    "201": {"description": "stored: id, bchno (its fixmedins_bchno), result"},
                    "200": {"description": "already stored with the same content"}, "409": _ERROR, "422": _ERROR},
                requestBody={"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Adjustment"}}}})},
            "/api/v1/withdrawals": {
                "get": _guarded("operators' withdrawals (3507), newest first", {"200": _json("Withdrawals"),
                                                                                "400": _ERROR},
                                parameters=[_query("state", "asked, sending, done or refused",
                                                       enum=["asked", "sending", "done", "refused"]),
                                            _limit(1000)]),
                "post": _guarded(
                    "withdraw a row the platform accepted (3507), with a reason; final: nothing goes up in its place",
                    {"201": _json("Withdrawal", "asked: the forwarder sends it"),
                     "404": {**_ERROR, "description": "the platform holds no such row"},
                     "409": {**_ERROR, "description": "being corrected, already being withdrawn, or named by a "
                             "return"}, "422": _ERROR},
                    requestBody={"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["bchno", "reason"], "properties": {
                            "bchno": {"type": "string", "maxLength": 30, "description": "the row's fixmedins_bchno"},
                            "reason": {"type": "string", "maxLength": 500},
                            "operator": {"type": "string", "maxLength": 64,
                                         "description": "who asks (default: the user's name)"}}}}}}),
            },
            "/api/v1/deadletters": {"get": _guarded(
                "rows the platform (or the local field check) refused, with the reason",
                {"200": _json("DeadLetters"), "400": _ERROR}, parameters=[_limit(1000)])},
            "/api/v1/deadletters/requeue": {"post": _guarded(
                "send dead letters again after a fix", {"200": {"description": "how many"}, "422": _ERROR},
                requestBody={"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"type": "object", "required": ["ids"], "properties": {"ids": {"type": "array",
                                                                                  "items": {"type": "integer"}}}},
                    {"type": "object", "required": ["all"], "properties": {"all": {"const": True}}}]}}}})},
            "/api/v1/me": {"get": _guarded("the user the token belongs to (read)", {"400": _ERROR, "200": {
                "description": "name and role", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"name": {"type": "string"},
                                                     "role": {"enum": ["read", "acknowledge", "admin"]}}}}}}})},
            "/api/v1/commands": {
                "get": _guarded("the device command audit log, newest first (read)", {"200": _json("Commands"),
                                                                                       "400": _ERROR},
                                parameters=[_query("device", "only this device"), _limit(1000)]),
                "post": _guarded(
                    "queue a signed command for a device as the calling user (admin); poll the row for the answer",
                    {"202": _json("Command", "queued"), "422": _ERROR}, requestBody={
                        "required": True, "content": {"application/json": {"schema": {
                            "type": "object", "required": ["device", "command"], "properties": {
                                "device": {"type": "string"},
                                "command": {"enum": ["mode", "config", "resend", "reboot", "time"]},
                                "argument": {"description": "mode: 1-7; resend: first seq; config: a map of "
                                             "debounce_ms, line_timeout_ms, gs1_form, status_interval_s, "
                                             "ack_timeout_s; time: ms since the epoch; reboot: null"}}}}}}),
            },
            "/api/v1/commands/{id}": {"get": _guarded("one command with the device's answer (read)",
                                                      {"200": _json("Command"), "400": _ERROR, "404": _ERROR},
                                                      parameters=[_ID])},
            "/api/v1/catalog": {"put": _guarded(
                "import products from CSV (all rows or none)", {"200": {"description": "imported"}, "422": _ERROR},
                requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}})},
        },
    }
