"""The HTTP API: health, metrics, rates, alerts, devices, quarantine, ticket and catalog intake, the dashboard.

Served by Hypercorn (gateway/_http_server.py) through an ASGI face (gateway/_http_face.py) that enforces the
limits before reading: the token from the headers, then the body cap, a slot among `max_in_flight`, the body
within `body_timeout_s`, and the handler in a small thread pool. JSON in and out, described by
`GET /openapi.json` (gateway/openapi.py). Every endpoint but /livez, /readyz and /openapi.json wants
`Authorization: Bearer <token>`: the read token or the write token for reads, the write token for writes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import RedirectResponse

from gateway import alerts, catalog, dashboard, devices, outbox, paycheck, pipeline, quarantine, rates
from gateway._http_face import INT64_MAX, Answer, ApiRequest, Endpoint, HttpError, Limits, Tokens, build_app
from gateway._http_server import BackgroundServer
from gateway.metrics import Metrics
from gateway.openapi import document
from gateway.rules import Rules
from gateway.store import Store
from gateway.tickets import TicketError, parse_ticket

__all__ = ["ApiSettings", "ApiServer", "ROUTES", "BODY_CAPS", "HttpError", "period_from"]

log = logging.getLogger("gateway.api")


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
    backlog: int = 1024
    """Connections the kernel holds for the server before it accepts them."""
    header_timeout_s: float = 10.0
    """A connection must send a whole request head within this of opening (or of its last answer)."""
    body_timeout_s: float = 60.0
    """A body must arrive whole within this; a connection silent this long mid-request is closed."""
    max_in_flight: int = 64
    """Requests read or handled at once (not /livez); more are answered 503 at once."""
    workers: int = 4
    """Threads running the handlers' database work."""


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
        self._ready = ready
        self._pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="api")
        limits = Limits(max_in_flight=max(1, settings.max_in_flight), body_timeout_s=settings.body_timeout_s)
        self.app = build_app(self._endpoints(), Tokens(read_token, write_token), limits, self._pool)
        """The ASGI app (its routes are ROUTES and the dashboard's pages)."""
        self._server = BackgroundServer(self.app, host=settings.host, port=settings.port, backlog=settings.backlog,
                                        header_timeout_s=settings.header_timeout_s,
                                        read_timeout_s=settings.body_timeout_s)

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._server.start()
        log.info("API on http://%s:%d", self.settings.host, self.port)

    def stop(self) -> None:
        self._server.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _endpoints(self) -> list[Endpoint]:
        routed = [Endpoint(method=method, path=path.replace("{id}", "{id:int}"), handler=partial(handler, self),
                           access=access, body_cap=BODY_CAPS.get((method, path), 0), on_loop=handler is ApiServer.livez)
                  for method, path, handler, access in ROUTES]
        pages = [Endpoint(method="GET", path=path, handler=self.dashboard_page, access="none")
                 for path in ("/", "/dashboard", "/dashboard/{file:path}")]
        return routed + pages

    # handlers ---------------------------------------------------------------------------------------------------

    def livez(self, request: ApiRequest) -> Answer:
        return 200, {"status": "alive"}

    def dashboard_page(self, request: ApiRequest) -> Answer:
        if request.url_path in ("/", "/dashboard"):
            return 302, RedirectResponse("/dashboard/", status_code=302)
        found = dashboard.static_file(request.url_path)
        if found is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no file {request.url_path[:200]}")
        return 200, found

    def readyz(self, request: ApiRequest) -> Answer:
        checks = dict(self._ready())
        try:
            with self.store.reading() as tx:
                tx.one("SELECT 1")
            checks["database"] = True
        except Exception:  # any database failure means not ready
            checks["database"] = False
        return (200 if all(checks.values()) else 503), checks

    def openapi(self, request: ApiRequest) -> Answer:
        return 200, document(BODY_CAPS)

    def prometheus(self, request: ApiRequest) -> Answer:
        return 200, self.metrics.render()

    def get_rates(self, request: ApiRequest) -> Answer:
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

    def get_series(self, request: ApiRequest) -> Answer:
        query = request.query
        period = period_from(query, self.rules)
        try:
            with self.store.reading() as tx:
                points = rates.series(tx, period, step=query.get("step", "hour"), timezone=self.rules.timezone,
                                      institution=query.get("institution", ""), terminal=query.get("terminal", ""))
        except ValueError as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        return 200, {"period": period.label, "points": points}

    def dashboard_settings(self, request: ApiRequest) -> Answer:
        return 200, dashboard.thresholds(self.board)

    def get_alerts(self, request: ApiRequest) -> Answer:
        query = request.query
        with self.store.reading() as tx:
            found = alerts.list_alerts(tx, state=query.get("state", ""), kind=query.get("type", ""),
                                       institution=query.get("institution", ""),
                                       limit=_limit(query, most=1000))
        return 200, {"alerts": [alert.as_dict() for alert in found]}

    def get_alert(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            return 200, _alert_call(lambda: alerts.get_alert(tx, request.path["id"])).as_dict()

    def get_evidence(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            alert = _alert_call(lambda: alerts.get_alert(tx, request.path["id"]))
            return 200, alerts.evidence(tx, alert)

    def change_alert(self, request: ApiRequest) -> Answer:
        body = _json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"state": "acknowledged"|"resolved", '
                            '"note": "..."}')
        note = body.get("note", "")
        with self.store.transaction() as tx:
            alert = _alert_call(lambda: alerts.change_state(tx, request.path["id"], body["state"],
                                                            note=str(note), now_ms=_now_ms()))
        return 200, alert.as_dict()

    def get_devices(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            found = devices.list_devices(tx, institution=request.query.get("institution", ""))
        return 200, {"devices": [device.as_dict() for device in found]}

    def get_quarantine(self, request: ApiRequest) -> Answer:
        """Newest first; `next_before` pages on, and the byte cap ends a page early (`truncated`)."""
        before = _whole(request.query["before"], "before", 1, INT64_MAX) if "before" in request.query else None
        limit = _limit(request.query, most=quarantine.MAX_LIMIT)
        with self.store.reading() as tx:
            return 200, quarantine.page(tx, before=before, limit=limit)

    def post_ticket(self, request: ApiRequest) -> Answer:
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

    def check_ticket(self, request: ApiRequest) -> Answer:
        """无码不付: the POS asks before settling; `time` may be left out (now)."""
        body = _json(request.body)
        if isinstance(body, dict) and "time" not in body:
            body = {**body, "time": _now_ms()}
        try:
            ticket = parse_ticket(body, timezone=self.rules.timezone)
        except TicketError as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        with self.store.reading() as tx:
            return 200, paycheck.check(tx, ticket, self.rules)

    def get_outbox(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            counts = outbox.state_counts(tx)
            oldest = tx.one("SELECT min(changed_ms) FROM outbox WHERE state IN ('pending', 'sending')")
            requests = dict(tx.all("SELECT state, count(*) FROM requests GROUP BY state"))
        return 200, {"rows": counts, "oldest_unsettled_ms": oldest[0] if oldest else None, "requests": requests}

    def get_dead_letters(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            found = outbox.dead_letters(tx, limit=_limit(request.query, most=1000))
        return 200, {"dead_letters": found}

    def requeue_dead_letters(self, request: ApiRequest) -> Answer:
        body = _json(request.body)
        ids = body.get("ids") if isinstance(body, dict) else None
        everything = isinstance(body, dict) and body.get("all") is True
        if not everything and not (isinstance(ids, list) and all(
                type(item) is int and 0 < item < 2**63 for item in ids)):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"ids": [outbox ids]} or {"all": true}')
        with self.store.transaction() as tx:
            count = outbox.requeue(tx, None if everything else ids, now_ms=_now_ms())
        return 200, {"requeued": count}

    def put_catalog(self, request: ApiRequest) -> Answer:
        try:
            products = catalog.read_csv(request.body.decode("utf-8"))
        except (catalog.CatalogError, UnicodeDecodeError) as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"catalog refused, nothing imported: {error}") from None
        with self.store.transaction() as tx:
            written = catalog.replace_products(tx, products)
        return 200, {"imported": written}



def period_from(query: Mapping[str, str], rules: Rules) -> rates.Period:
    """The period a rates query asks for: day=YYYY-MM-DD, window_h=N, period=window (the configured rolling
    window), or today in the configured zone."""
    if "window_h" in query or query.get("period") == "window":
        hours = _whole(query.get("window_h", str(rules.rolling_window_h)), "window_h", 1, 24 * 366,
                       status=HTTPStatus.UNPROCESSABLE_ENTITY)
        return rates.window_period(_now_ms(), hours)
    if "day" in query:
        try:
            day = date.fromisoformat(query["day"])
            if not 2000 <= day.year <= 2099:
                raise ValueError
        except ValueError:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY,
                            f"day must be YYYY-MM-DD from 2000 to 2099, got {query['day'][:40]!r}") from None
    else:
        day = datetime.now(ZoneInfo(rules.timezone)).date()
    return rates.day_period(day, rules.timezone)


def _alert_call(call: Callable[[], alerts.Alert]) -> alerts.Alert:
    try:
        return call()
    except alerts.AlertError as error:
        status = HTTPStatus.NOT_FOUND if str(error).startswith("no alert") else HTTPStatus.CONFLICT
        raise HttpError(status, str(error)) from None


def _limit(query: Mapping[str, str], *, most: int, default: int = 100) -> int:
    return _whole(query.get("limit", str(min(default, most))), "limit", 1, most)


def _whole(text: str, name: str, least: int, most: int, *, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> int:
    """A whole number from least to most, or `status` naming the parameter, the range and what came."""
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if number is None or not least <= number <= most:
        raise HttpError(status, f"{name} must be a whole number {least}-{most}, got {text[:40]!r}")
    return number


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {str(error)[:200]}") from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


ROUTES: list[tuple[str, str, Callable[[ApiServer, ApiRequest], Answer], str]] = [
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
    ("POST", "/api/v1/tickets/check", ApiServer.check_ticket, "read"),
    ("PUT", "/api/v1/catalog", ApiServer.put_catalog, "write"),
    ("GET", "/api/v1/outbox", ApiServer.get_outbox, "read"),
    ("GET", "/api/v1/deadletters", ApiServer.get_dead_letters, "read"),
    ("POST", "/api/v1/deadletters/requeue", ApiServer.requeue_dead_letters, "write"),
]
"""(method, path template, handler, token needed): what openapi.py documents, route for route."""

BODY_CAPS: dict[tuple[str, str], int] = {
    ("POST", "/api/v1/alerts/{id}"): 16 * 1024,
    ("POST", "/api/v1/tickets"): 64 * 1024,
    ("POST", "/api/v1/tickets/check"): 64 * 1024,
    ("PUT", "/api/v1/catalog"): 4 * 1024 * 1024,
    ("POST", "/api/v1/deadletters/requeue"): 1024 * 1024,
}
"""The largest body each route takes, in bytes (a ticket: as on MQTT); routes not listed take none."""
