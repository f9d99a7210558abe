"""The HTTP API: health, metrics, rates, alerts, devices, quarantine, ticket and catalog intake.

Standard library server (one thread per request), JSON in and out, described by
`GET /openapi.json` (gateway/openapi.py). Every endpoint but /livez, /readyz and
/openapi.json wants `Authorization: Bearer <token>`: the read token or the write
token for reads, the write token for writes.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from gateway import alerts, catalog, dashboard, devices, outbox, pipeline, rates
from gateway.metrics import Metrics
from gateway.openapi import document
from gateway.rules import Rules
from gateway.store import Store
from gateway.tickets import TicketError, parse_ticket

__all__ = ["ApiSettings", "ApiServer", "ROUTES"]

log = logging.getLogger("gateway.api")
_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    """Address to listen on; 0.0.0.0 for every interface (put TLS in front: a reverse proxy)."""
    port: int = 8080
    token: str = ""
    """Read token; empty: made at first start and kept in <data_dir>/api-token (owner-only)."""
    write_token: str = ""
    """Write token (also reads); empty: made at first start and kept in <data_dir>/api-write-token."""


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Request:
    query: dict[str, str]
    body: bytes
    match: re.Match[str]


Handler = Callable[["ApiServer", _Request], tuple[int, Any]]


class ApiServer:
    """Serves the API from a background thread; `ready` tells /readyz whether ingest is connected."""

    def __init__(self, settings: ApiSettings, store: Store, rules: Rules, metrics: Metrics, *,
                 read_token: str, write_token: str, ready: Callable[[], dict[str, bool]],
                 board: dashboard.DashboardSettings | None = None) -> None:
        self.settings = settings
        self.board = board or dashboard.DashboardSettings()
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self._read_token = read_token
        self._write_token = write_token
        self._ready = ready
        self._server = ThreadingHTTPServer((settings.host, settings.port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("API on http://%s:%d", self.settings.host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def authorise(self, header: str, *, write: bool) -> None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "Authorization: Bearer <token> required")
        if hmac.compare_digest(token.encode(), self._write_token.encode()):
            return
        if hmac.compare_digest(token.encode(), self._read_token.encode()):
            if write:
                raise HttpError(HTTPStatus.FORBIDDEN, "the read token cannot change anything; use the write token")
            return
        raise HttpError(HTTPStatus.UNAUTHORIZED, "unknown token")

    # handlers ---------------------------------------------------------------------------------------------------

    def livez(self, request: _Request) -> tuple[int, Any]:
        return 200, {"status": "alive"}

    def readyz(self, request: _Request) -> tuple[int, Any]:
        checks = dict(self._ready())
        try:
            with self.store.reading() as tx:
                tx.one("SELECT 1")
            checks["database"] = True
        except Exception:  # any database failure means not ready
            checks["database"] = False
        return (200 if all(checks.values()) else 503), checks

    def openapi(self, request: _Request) -> tuple[int, Any]:
        return 200, document()

    def prometheus(self, request: _Request) -> tuple[int, Any]:
        return 200, self.metrics.render()

    def get_rates(self, request: _Request) -> tuple[int, Any]:
        query = request.query
        scope = query.get("scope", "terminal")
        if scope not in ("terminal", "institution"):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, "scope must be terminal or institution")
        period = period_from(query, self.rules)
        with self.store.reading() as tx:
            rows = rates.query(tx, period, scope=scope, institution=query.get("institution", ""),
                               terminal=query.get("terminal", ""), region=query.get("region", ""),
                               institution_type=query.get("institution_type", ""))
        return 200, {"period": period.label, "start_ms": period.start_ms, "end_ms": period.end_ms,
                     "rates": [row.as_dict() for row in rows]}

    def get_series(self, request: _Request) -> tuple[int, Any]:
        query = request.query
        period = period_from(query, self.rules)
        try:
            with self.store.reading() as tx:
                points = rates.series(tx, period, step=query.get("step", "hour"), timezone=self.rules.timezone,
                                      institution=query.get("institution", ""), terminal=query.get("terminal", ""))
        except ValueError as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        return 200, {"period": period.label, "points": points}

    def dashboard_settings(self, request: _Request) -> tuple[int, Any]:
        return 200, dashboard.thresholds(self.board)

    def get_alerts(self, request: _Request) -> tuple[int, Any]:
        query = request.query
        with self.store.reading() as tx:
            found = alerts.list_alerts(tx, state=query.get("state", ""), kind=query.get("type", ""),
                                       institution=query.get("institution", ""),
                                       limit=_int(query.get("limit", "100"), "limit"))
        return 200, {"alerts": [alert.as_dict() for alert in found]}

    def get_alert(self, request: _Request) -> tuple[int, Any]:
        with self.store.reading() as tx:
            return 200, _alert_call(lambda: alerts.get_alert(tx, int(request.match["id"]))).as_dict()

    def get_evidence(self, request: _Request) -> tuple[int, Any]:
        with self.store.reading() as tx:
            alert = _alert_call(lambda: alerts.get_alert(tx, int(request.match["id"])))
            return 200, alerts.evidence(tx, alert)

    def change_alert(self, request: _Request) -> tuple[int, Any]:
        body = _json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"state": "acknowledged"|"resolved", '
                            '"note": "..."}')
        note = body.get("note", "")
        with self.store.transaction() as tx:
            alert = _alert_call(lambda: alerts.change_state(tx, int(request.match["id"]), body["state"],
                                                            note=str(note), now_ms=_now_ms()))
        return 200, alert.as_dict()

    def get_devices(self, request: _Request) -> tuple[int, Any]:
        with self.store.reading() as tx:
            found = devices.list_devices(tx, institution=request.query.get("institution", ""))
        return 200, {"devices": [device.as_dict() for device in found]}

    def get_quarantine(self, request: _Request) -> tuple[int, Any]:
        limit = max(1, min(_int(request.query.get("limit", "100"), "limit"), 1000))
        with self.store.reading() as tx:
            rows = tx.all("SELECT id, received_ms, last_ms, times, topic, device, reason, detail, message "
                          "FROM quarantine ORDER BY last_ms DESC, id DESC LIMIT ?", (limit,))
            reasons = tx.all("SELECT reason, count(*), sum(times) FROM quarantine GROUP BY reason ORDER BY reason")
        names = ("id", "received_ms", "last_ms", "times", "topic", "device", "reason", "detail")
        return 200, {
            "reasons": {reason: {"messages": count, "times": times} for reason, count, times in reasons},
            "messages": [{**dict(zip(names, row[:-1], strict=True)), "message_hex": bytes(row[-1]).hex()}
                         for row in rows],
        }

    def post_ticket(self, request: _Request) -> tuple[int, Any]:
        try:
            ticket = parse_ticket(_json(request.body), timezone=self.rules.timezone)
        except TicketError as error:
            self.metrics.tickets.labels("refused").inc()
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        entry = pipeline.TicketIn(ticket, "http:/api/v1/tickets", request.body, _now_ms())
        outcome = pipeline.commit(self.store, self.rules, tickets_in=[entry]).tickets[0]
        self.metrics.tickets.labels(outcome.result).inc()
        if outcome.result == "refused":
            status = HTTPStatus.CONFLICT if outcome.reason == "ticket_conflict" else HTTPStatus.UNPROCESSABLE_ENTITY
            raise HttpError(status, f"{outcome.reason}: {outcome.error}")
        return (201 if outcome.result == "stored" else 200), {"id": outcome.ticket_id, "result": outcome.result}

    def get_outbox(self, request: _Request) -> tuple[int, Any]:
        with self.store.reading() as tx:
            counts = outbox.state_counts(tx)
            oldest = tx.one("SELECT min(changed_ms) FROM outbox WHERE state IN ('pending', 'sending')")
            requests = dict(tx.all("SELECT state, count(*) FROM requests GROUP BY state"))
        return 200, {"rows": counts, "oldest_unsettled_ms": oldest[0] if oldest else None, "requests": requests}

    def get_dead_letters(self, request: _Request) -> tuple[int, Any]:
        with self.store.reading() as tx:
            found = outbox.dead_letters(tx, limit=_int(request.query.get("limit", "100"), "limit"))
        return 200, {"dead_letters": found}

    def requeue_dead_letters(self, request: _Request) -> tuple[int, Any]:
        body = _json(request.body)
        ids = body.get("ids") if isinstance(body, dict) else None
        everything = isinstance(body, dict) and body.get("all") is True
        if not everything and not (isinstance(ids, list) and all(isinstance(item, int) for item in ids)):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"ids": [outbox ids]} or {"all": true}')
        with self.store.transaction() as tx:
            count = outbox.requeue(tx, None if everything else ids, now_ms=_now_ms())
        return 200, {"requeued": count}

    def put_catalog(self, request: _Request) -> tuple[int, Any]:
        try:
            products = catalog.read_csv(request.body.decode("utf-8"))
        except (catalog.CatalogError, UnicodeDecodeError) as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"catalog refused, nothing imported: {error}") from None
        with self.store.transaction() as tx:
            written = catalog.replace_products(tx, products)
        return 200, {"imported": written}


def period_from(query: dict[str, str], rules: Rules) -> rates.Period:
    """The period a rates query asks for: day=YYYY-MM-DD, window_h=N, period=window (the configured rolling
    window), or today in the configured zone."""
    if "window_h" in query or query.get("period") == "window":
        hours = _int(query.get("window_h", str(rules.rolling_window_h)), "window_h")
        if not 1 <= hours <= 24 * 366:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, "window_h must be 1-8784")
        return rates.window_period(_now_ms(), hours)
    if "day" in query:
        try:
            day = date.fromisoformat(query["day"])
        except ValueError:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"day must be YYYY-MM-DD, got {query['day']!r}") from None
    else:
        day = datetime.now(ZoneInfo(rules.timezone)).date()
    return rates.day_period(day, rules.timezone)


def _alert_call(call: Callable[[], alerts.Alert]) -> alerts.Alert:
    try:
        return call()
    except alerts.AlertError as error:
        status = HTTPStatus.NOT_FOUND if str(error).startswith("no alert") else HTTPStatus.CONFLICT
        raise HttpError(status, str(error)) from None


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{name} must be a whole number, got {text!r}") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {error}") from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


ROUTES: list[tuple[str, str, Handler, str]] = [
    ("GET", "/livez", ApiServer.livez, "none"),
    ("GET", "/readyz", ApiServer.readyz, "none"),
    ("GET", "/openapi.json", ApiServer.openapi, "none"),
    ("GET", "/metrics", ApiServer.prometheus, "read"),
    ("GET", "/api/v1/rates", ApiServer.get_rates, "read"),
    ("GET", "/api/v1/rates/series", ApiServer.get_series, "read"),
    ("GET", "/api/v1/dashboard/settings", ApiServer.dashboard_settings, "read"),
    ("GET", "/api/v1/alerts", ApiServer.get_alerts, "read"),
    ("GET", "/api/v1/alerts/{id}", ApiServer.get_alert, "read"),
    ("POST", "/api/v1/alerts/{id}", ApiServer.change_alert, "write"),
    ("GET", "/api/v1/alerts/{id}/evidence", ApiServer.get_evidence, "read"),
    ("GET", "/api/v1/devices", ApiServer.get_devices, "read"),
    ("GET", "/api/v1/quarantine", ApiServer.get_quarantine, "read"),
    ("POST", "/api/v1/tickets", ApiServer.post_ticket, "write"),
    ("PUT", "/api/v1/catalog", ApiServer.put_catalog, "write"),
    ("GET", "/api/v1/outbox", ApiServer.get_outbox, "read"),
    ("GET", "/api/v1/deadletters", ApiServer.get_dead_letters, "read"),
    ("POST", "/api/v1/deadletters/requeue", ApiServer.requeue_dead_letters, "write"),
]
"""(method, path template, handler, token needed): what openapi.py documents, route for route."""
_COMPILED = [(method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[0-9]+)", path) + "$"), handler, access)
             for method, path, handler, access in ROUTES]


def _handler_class(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "trace-gateway"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
            log.debug("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {_MAX_BODY} bytes")
                body = self.rfile.read(length) if length else b""
                status, payload = self._route(method, url.path, url.query, body)
            except _Redirect as redirect:
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", redirect.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            except HttpError as error:
                status, payload = error.status, {"error": str(error)}
            except Exception:  # a bug must answer 500, not drop the connection
                log.exception("%s %s failed", method, url.path)
                status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the gateway log"}
            self._send(int(status), payload)

        def _route(self, method: str, path: str, query_text: str, body: bytes) -> tuple[int, Any]:
            if method == "GET" and (path == "/" or path.startswith("/dashboard")):
                if path in ("/", "/dashboard"):
                    raise _Redirect("/dashboard/")
                found = dashboard.static_file(path)
                if found is None:
                    raise HttpError(HTTPStatus.NOT_FOUND, f"no file {path}")
                return 200, found
            allowed = []
            for route_method, pattern, handler, access in _COMPILED:
                match = pattern.match(path)
                if not match:
                    continue
                if route_method != method:
                    allowed.append(route_method)
                    continue
                if access != "none":
                    api.authorise(self.headers.get("Authorization", ""), write=access == "write")
                query = {key: values[-1] for key, values in parse_qs(query_text).items()}
                return handler(api, _Request(query, body, match))
            if allowed:
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed; use {', '.join(allowed)}")
            raise HttpError(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see /openapi.json")

        def _send(self, status: int, payload: Any) -> None:
            if isinstance(payload, tuple):
                data, kind = payload
            elif isinstance(payload, bytes):
                data, kind = payload, "text/plain; version=0.0.4; charset=utf-8"
            else:
                data, kind = json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", "Bearer")
            self.end_headers()
            self.wfile.write(data)

    return Handler
