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


_ARRAY_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}


def _listing(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "array", "items": item}}}


def _open(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": [], "responses": responses, **extra}


def _guarded(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An operation that needs a token; one with a body also answers the body's refusals."""
    body_errors = _BODY_ERRORS if "requestBody" in extra else {}
    return {"summary": summary, "responses": {**responses, **_AUTH_ERRORS, **body_errors}, **extra}


_RATE_FIELDS = {
    "scope": {"type": "string"}, "institution": {"type": "string"}, "terminal": {"type": "string"},
    "period": {"type": "string"},
    "coverage": {"type": ["number", "null"], "description": "扫码核查率: units_covered / units_required"},
    "valid_scan_rate": {"type": ["number", "null"], "description": "valid_scans / scans"},
    "duplicate_rate": {"type": ["number", "null"], "description": "药品销售重复率: duplicate_sales / sale_scans"},
    "consistency_error_rate": {"type": ["number", "null"],
                               "description": "单据一致性错误率: mismatched_scans / matched_scans"},
    "upload_rate": {"type": ["number", "null"], "description": "上传率: uploaded / stored"},
    "missing_seqs": {"type": "integer", "description": "seqs devices wrote that are not stored (device loss)"},
    **{name: {"type": "integer"} for name in ("scans", "valid_scans", "sale_scans", "duplicate_sales", "matched_scans",
                                              "mismatched_scans", "units_required", "units_covered", "stored",
                                              "uploaded")},
}
_ALERT_FIELDS = {
    "id": {"type": "integer"}, "type": {"type": "string"},
    "severity": {"type": "string", "enum": ["warning", "high", "critical"]},
    "state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
    "institution": {"type": "string"}, "terminal": {"type": "string"}, "device": {"type": "string"},
    "subject": {"type": "string"}, "detail": {"type": "string"}, "count": {"type": "integer"},
    "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"}, "changed_ms": {"type": "integer"},
    "note": {"type": "string"},
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


def document(body_caps: Mapping[tuple[str, str], int] | None = None) -> dict[str, Any]:
    """The description; `body_caps` ((method, path) -> bytes, the API's BODY_CAPS) go into the request bodies."""
    described = _described()
    for (method, path), cap in (body_caps or {}).items():
        described["paths"][path][method.lower()]["requestBody"]["description"] = f"at most {cap} bytes (413 above)"
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
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "trace-gateway", "version": "1",
                 "description": "Scan events, supervision rates and alerts of the traceability-code gateway."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "read token for GET, write token for everything"}},
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
                    name: {"type": "string" if name in ("institution", "infno", "bchno", "error", "code", "device")
                           else "integer"} for name in ("id", "event_id", "institution", "infno", "bchno", "error",
                                                        "changed_ms", "code", "device", "seq")}}),
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
                                              "422": _ERROR}, parameters=rates_parameters)},
            "/api/v1/rates/series": {"get": _guarded(
                "coverage and scan volume per hour or per day", {"200": {"description": "points, oldest first"},
                                                                 "422": _ERROR},
                parameters=[_query("step", "hour or day", enum=["hour", "day"], default="hour"),
                            *rates_parameters[1:5]])},
            "/api/v1/dashboard/settings": {"get": _guarded("the thresholds the dashboard colours rates against",
                                                           {"200": {"description": "per rate: good, warn"}})},
            "/api/v1/alerts": {"get": _guarded("alerts, newest first", {"200": _json("Alerts"), "400": _ERROR},
                                               parameters=[
                _query("state", "open, acknowledged, resolved, or live (open and acknowledged)"),
                _query("type", "alert type"), _query("institution", "only this institution"),
                _limit(1000)])},
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
            "/api/v1/devices": {"get": _guarded("devices with their last status", {"200": _json("Devices")},
                                                parameters=[_query("institution", "only this institution")])},
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
                {"200": _json("TicketCheck"), "422": _ERROR},
                requestBody={"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/TicketToCheck"}}}})},
            "/api/v1/outbox": {"get": _guarded("outbox rows by state, the oldest unsettled, requests by state",
                                               {"200": {"description": "counts"}})},
            "/api/v1/deadletters": {"get": _guarded(
                "rows the platform (or the local field check) refused, with the reason",
                {"200": _json("DeadLetters"), "400": _ERROR}, parameters=[_limit(1000)])},
            "/api/v1/deadletters/requeue": {"post": _guarded(
                "send dead letters again after a fix", {"200": {"description": "how many"}, "422": _ERROR},
                requestBody={"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"type": "object", "required": ["ids"], "properties": {"ids": {"type": "array",
                                                                                  "items": {"type": "integer"}}}},
                    {"type": "object", "required": ["all"], "properties": {"all": {"const": True}}}]}}}})},
            "/api/v1/catalog": {"put": _guarded(
                "import products from CSV (all rows or none)", {"200": {"description": "imported"}, "422": _ERROR},
                requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}})},
        },
    }
