"""The HTTP API: health, metrics, rates, alerts, devices, quarantine, ticket and catalog intake, the dashboard.

Served by Hypercorn (gateway/faces/_http_server.py) through an ASGI face (gateway/faces/_http_face.py) that enforces the
limits before reading: the token from the headers, then the body cap, a slot among `max_in_flight`, the body
within `body_timeout_s`, and the handler in a small thread pool. JSON in and out, described by
`GET /openapi.json` (gateway/faces/openapi.py). Every endpoint but /livez, /readyz and /openapi.json wants
`Authorization: Bearer <token>` of a named user (gateway/domain/users.py) whose role allows it: read to look,
acknowledge to move alerts, admin for the rest and for device commands (the legacy read and write tokens are the
users read-token and write-token).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import RedirectResponse, Response

from gateway.domain import (
    adjustments,
    alerts,
    catalog,
    control,
    devices,
    outbox,
    paycheck,
    pipeline,
    quarantine,
    rates,
    scans,
    tickets,
    withdrawals,
)
from gateway.faces import dashboard, export, filters, wording
from gateway.faces._http_face import INT64_MAX, Answer, ApiRequest, Endpoint, HttpError, Limits, build_app
from gateway.faces._http_server import BackgroundServer
from gateway.faces.openapi import document
from gateway.faces.tokens import TokenBook
from gateway.metrics import Metrics
from gateway.rules import Rules
from gateway.settings import ApiSettings, DashboardSettings
from gateway.store.base import Store
from gateway.wire.ticket import TicketError, parse_ticket

__all__ = ["ApiServer", "ROUTES", "BODY_CAPS", "HttpError"]

log = logging.getLogger("gateway.api")


class ApiServer:
    """Serves the API from a background thread; `ready` tells /readyz whether ingest is connected."""

    def __init__(self, settings: ApiSettings, store: Store, rules: Rules, metrics: Metrics, *,
                 read_token: str, write_token: str, ready: Callable[[], dict[str, bool]],
                 board: DashboardSettings | None = None,
                 institution_names: Mapping[str, str] | None = None, sale_hold_ms: int = 0,
                 commands_queued: Callable[[], None] = lambda: None) -> None:
        """`read_token` and `write_token`: the legacy shared tokens (users read-token and write-token);
        `sale_hold_ms`: forward.sale_hold_s, to tell held sale rows from rows ready to go (GET /api/v1/outbox);
        `commands_queued` is told when a device command was queued (the sender sends it at once)."""
        self.settings = settings
        self.sale_hold_ms = sale_hold_ms
        self.board = board or DashboardSettings()
        self.institution_names = dict(institution_names or {})
        """Institution code -> its name (forward.institutions.<code>.fixmedins_name), shown beside the code."""
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self._ready = ready
        self._commands_queued = commands_queued
        self._pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="api")
        limits = Limits(max_in_flight=max(1, settings.max_in_flight), body_timeout_s=settings.body_timeout_s)
        tokens = TokenBook(store, self._pool, legacy={"read-token": read_token, "write-token": write_token})
        self.app = build_app(self._endpoints(), tokens, limits, self._pool)
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
        return 200, document(BODY_CAPS, {(method, path): access for method, path, _, access in ROUTES})

    def prometheus(self, request: ApiRequest) -> Answer:
        return 200, self.metrics.render()

    def get_rates(self, request: ApiRequest) -> Answer:
        period, rows = self._rate_rows(request.query, request.query.get("scope", "terminal"), _RATES_QUERY)
        return 200, {"period": period.label, "start_ms": period.start_ms, "end_ms": period.end_ms, "rates": rows}

    def _rate_rows(self, query: Mapping[str, str], scope: str,
                   known: Iterable[str]) -> tuple[rates.Period, list[dict[str, object]]]:
        chosen = _filters(query, known)
        period = filters.period_from(query, self.rules)
        with self.store.reading() as tx:
            rows = rates.query(tx, period, scope=scope, institution=chosen.institution, terminal=chosen.terminal,
                               region=chosen.region, institution_type=chosen.institution_type)
        return period, self._named([row.as_dict() for row in rows])

    def _named(self, rows: list[dict[str, object]]) -> list[dict[str, object]]:
        """Each row with `institution_name` beside its `institution` code ("" when none is configured)."""
        return [{**row, "institution_name": self.institution_names.get(str(row.get("institution", "")), "")}
                for row in rows]

    def get_series(self, request: ApiRequest) -> Answer:
        """One series (`by=all`, the default) or one per terminal (`by=terminal`, the trends chart)."""
        query = request.query
        chosen = _filters(query, _SERIES_QUERY)
        period = filters.period_from(query, self.rules)
        step = query.get("step", "hour")
        if query.get("by", "all") == "terminal":
            return 200, self._trends(period, step, chosen)
        if query.get("by", "all") != "all":
            raise HttpError(HTTPStatus.BAD_REQUEST, f"by must be all or terminal, got {query['by'][:40]!r}")
        with self.store.reading() as tx:
            points = rates.series(tx, period, step=step, timezone=self.rules.timezone,
                                  institution=chosen.institution, terminal=chosen.terminal)
        return 200, {"period": period.label, "points": points}

    def _trends(self, period: rates.Period, step: str, chosen: filters.Filters) -> dict[str, object]:
        """Per terminal of the filters (the busiest TREND_TERMINALS), its points over `period`."""
        if step not in ("hour", "day"):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"step must be hour or day, got {step[:40]!r}")
        if step == "hour" and period.end_ms - period.start_ms > TREND_HOURS_MAX * 3_600_000:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"step=hour per terminal covers at most {TREND_HOURS_MAX} "
                            "hours; use step=day for a longer range")
        with self.store.reading() as tx:
            found = rates.query(tx, period, scope="terminal", institution=chosen.institution,
                                terminal=chosen.terminal, region=chosen.region,
                                institution_type=chosen.institution_type)
            busiest = sorted(found, key=lambda row: (-row.counts["scans"], row.institution, row.terminal))
            shown = sorted(busiest[:TREND_TERMINALS], key=lambda row: (row.institution, row.terminal))
            lines: list[dict[str, object]] = [
                {"institution": row.institution, "terminal": row.terminal,
                 "points": rates.series(tx, period, step=step, timezone=self.rules.timezone,
                                        institution=row.institution, terminal=row.terminal)} for row in shown]
        return {"period": period.label, "start_ms": period.start_ms, "end_ms": period.end_ms, "step": step,
                "terminals": self._named(lines), "left_out": len(found) - len(shown)}

    def dashboard_settings(self, request: ApiRequest) -> Answer:
        """The thresholds and zone the page draws with, and who is signed in (the page shows the name and offers
        device control to an admin)."""
        return 200, {**dashboard.thresholds(self.board), "timezone": self.rules.timezone, "user": request.user,
                     "role": request.role}

    def get_institutions(self, request: ApiRequest) -> Answer:
        """The registered institutions with their names and terminals, and the named ones without devices yet."""
        _filters(request.query, ())
        with self.store.reading() as tx:
            rows = devices.terminals(tx)
        found: dict[str, dict[str, Any]] = {}
        for code, kind, region, terminal in rows:
            entry = found.setdefault(code, {"institution": code, "institution_type": kind, "region": region,
                                            "terminals": []})
            if terminal not in entry["terminals"]:
                entry["terminals"].append(terminal)
        for code in self.institution_names:
            found.setdefault(code, {"institution": code, "institution_type": "", "region": "", "terminals": []})
        return 200, {"institutions": self._named([found[code] for code in sorted(found)])}

    def get_alerts(self, request: ApiRequest) -> Answer:
        return 200, {"alerts": self._alert_rows(request.query, _ALERTS_QUERY)}

    def _alert_rows(self, query: Mapping[str, str], known: Iterable[str]) -> list[dict[str, object]]:
        """Alerts with the institution's name and the detail in Chinese (`detail_zh`). A `terminal` is looked for
        among the newest 1000 that pass the other filters (the alerts table has no terminal index)."""
        chosen = _filters(query, known)
        limit = _limit(query, most=1000)
        state, kind = query.get("state", ""), query.get("type", "")
        if state not in ("", "live", *alerts.STATES) or kind not in ("", *alerts.TYPES):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"state must be one of live, {', '.join(alerts.STATES)} and type "
                            f"one of {', '.join(alerts.TYPES)}; got {state[:40]!r}, {kind[:40]!r}")
        with self.store.reading() as tx:
            found = alerts.list_alerts(tx, state=state, kind=kind, institution=chosen.institution,
                                       limit=limit if not chosen.terminal else 1000)
        rows = [{**alert.as_dict(), "detail_zh": wording.alert_detail(alert.type, alert.detail)} for alert in found
                if not chosen.terminal or alert.terminal == chosen.terminal]
        return self._named(rows[:limit])

    def get_alert(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            return 200, alerts.get_alert(tx, request.path["id"]).as_dict()

    def get_evidence(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            alert = alerts.get_alert(tx, request.path["id"])
            return 200, {"events": scans.as_evidence(tx, alert.events),
                         "tickets": tickets.as_evidence(tx, alert.tickets)}

    def change_alert(self, request: ApiRequest) -> Answer:
        body = _json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"state": "acknowledged"|"resolved", '
                            '"note": "..."}')
        note = body.get("note", "")
        with self.store.transaction() as tx:
            alert = alerts.change_state(tx, request.path["id"], body["state"], note=str(note), now_ms=_now_ms(),
                                        by=request.user)
        return 200, alert.as_dict()

    def get_devices(self, request: ApiRequest) -> Answer:
        return 200, {"devices": self._device_rows(request.query, _DEVICES_QUERY)}

    def _device_rows(self, query: Mapping[str, str], known: Iterable[str]) -> list[dict[str, object]]:
        chosen = _filters(query, known)
        with self.store.reading() as tx:
            found = devices.list_devices(tx, institution=chosen.institution)
        return self._named([device.as_dict() for device in found
                            if not chosen.terminal or device.terminal == chosen.terminal])

    def get_quarantine(self, request: ApiRequest) -> Answer:
        """Newest first; `next_before` pages on, and the byte cap ends a page early (`truncated`)."""
        before = (filters.whole_number(request.query["before"], "before", 1, INT64_MAX)
                  if "before" in request.query else None)
        limit = _limit(request.query, most=quarantine.MAX_LIMIT)
        with self.store.reading() as tx:
            return 200, quarantine.page(tx, before=before, limit=limit)

    def post_ticket(self, request: ApiRequest) -> Answer:
        try:
            ticket = parse_ticket(_json(request.body), timezone=self.rules.timezone)
        except TicketError:
            self.metrics.tickets.labels("refused").inc()
            raise
        entry = pipeline.TicketIn(ticket, "http:/api/v1/tickets", request.body, _now_ms())
        outcome = pipeline.commit(self.store, self.rules, tickets_in=[entry]).tickets[0]
        self.metrics.tickets.labels(outcome.result).inc()
        if outcome.result == "refused":
            status = HTTPStatus.CONFLICT if outcome.reason == "ticket_conflict" else HTTPStatus.UNPROCESSABLE_ENTITY
            raise HttpError(status, f"{outcome.reason}: {outcome.error}")
        return (201 if outcome.result == "stored" else 200), {"id": outcome.ticket_id, "result": outcome.result}

    def check_ticket(self, request: ApiRequest) -> Answer:
        """无码不付: the POS asks before settling; `time` may be left out (now). Role read: it writes nothing, so a
        POS that only asks needs no admin token."""
        _filters(request.query, ())
        body = _json(request.body)
        if isinstance(body, dict) and "time" not in body:
            body = {**body, "time": _now_ms()}
        ticket = parse_ticket(body, timezone=self.rules.timezone)
        with self.store.reading() as tx:  # a number stored with other lines: ticket_conflict (409)
            return 200, paycheck.check(tx, ticket, self.rules)

    def get_outbox(self, request: ApiRequest) -> Answer:
        with self.store.reading() as tx:
            counts = outbox.state_counts(tx, now_ms=_now_ms(), sale_hold_ms=self.sale_hold_ms)
            oldest = outbox.oldest_unsettled_ms(tx)
            requests = outbox.request_counts(tx)
            documents = adjustments.state_counts(tx)
            asked = withdrawals.state_counts(tx)
        return 200, {"rows": counts, "oldest_unsettled_ms": oldest, "requests": requests,
                     "adjustments": documents, "withdrawals": asked}

    def post_adjustment(self, request: ApiRequest) -> Answer:
        now = _now_ms()
        document = adjustments.parse_adjustment(_json(request.body), timezone=self.rules.timezone)
        with self.store.transaction() as tx:
            adjustment_id, new = adjustments.record(tx, document, now_ms=now)
        return (201 if new else 200), {"id": adjustment_id, "bchno": f"TCA{adjustment_id}",
                                       "result": "stored" if new else "repeated"}

    def get_withdrawals(self, request: ApiRequest) -> Answer:
        _filters(request.query, _WITHDRAWALS_QUERY)
        state = request.query.get("state", "")
        if state not in ("", *withdrawals.STATES):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"state must be one of {', '.join(withdrawals.STATES)}, "
                            f"got {state[:40]!r}")
        with self.store.reading() as tx:
            found = withdrawals.listing(tx, state=state, limit=_limit(request.query, most=1000))
        return 200, {"withdrawals": [item.as_dict() for item in found]}

    def post_withdrawal(self, request: ApiRequest) -> Answer:
        body = _json(request.body)
        if not isinstance(body, dict) or not all(isinstance(body.get(key, ""), str) for key in
                                                 ("bchno", "reason", "operator")):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"bchno": "...", "reason": "...", '
                            '"operator": "..."}')
        with self.store.transaction() as tx:
            asked = outbox.ask_withdrawal(tx, str(body.get("bchno", ""))[:30], reason=str(body.get("reason", "")),
                                    operator=str(body.get("operator", "")) or request.user, now_ms=_now_ms())
        return 201, asked.as_dict()

    def get_dead_letters(self, request: ApiRequest) -> Answer:
        return 200, {"dead_letters": self._dead_rows(request.query, _DEAD_QUERY)}

    def _dead_rows(self, query: Mapping[str, str], known: Iterable[str]) -> list[dict[str, object]]:
        """Dead letters with the institution's name and the reason in Chinese (`error_zh`)."""
        _filters(query, known)
        with self.store.reading() as tx:
            found = outbox.dead_letters(tx, limit=_limit(query, most=1000))
        return self._named([{**row, "error_zh": wording.dead_letter_reason(str(row["error"]))} for row in found])

    def get_export(self, request: ApiRequest) -> Answer:
        """A dashboard table as CSV or .xlsx, the figures as the page shows them (gateway/faces/export.py)."""
        query = request.query
        table, kind, lang = query.get("table", ""), query.get("format", "csv"), query.get("lang", "zh")
        if table not in export.TABLES:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"table must be one of {', '.join(export.TABLES)}, "
                            f"got {table[:40]!r}")
        if kind not in ("csv", "xlsx") or lang not in export.LANGUAGES:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"format must be csv or xlsx and lang zh or en, got "
                            f"{kind[:10]!r} and {lang[:10]!r}")
        known = (*_EXPORT_QUERY, *_EXPORTED[table])
        if table in ("institutions", "terminals"):
            rows = self._rate_rows(query, table.removesuffix("s"), known)[1]
        else:
            rows = {"alerts": self._alert_rows, "devices": self._device_rows, "deadletters": self._dead_rows,
                    "commands": self._command_rows}[table](query, known)
        keys = {key for key, _, _ in export.columns(table)}
        if "sort" in query:
            if query["sort"] not in keys:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"sort must be a column of {table} "
                                f"({', '.join(sorted(keys))}), got {query['sort'][:40]!r}")
            rows = export.sort_rows(rows, query["sort"], descending=query.get("desc", "0") == "1",
                                    form=export.column_format(table, query["sort"]))
        shown = export.shown_table(table, rows, lang=lang, timezone=self.rules.timezone)
        name = f"{table}-{datetime.now(ZoneInfo(self.rules.timezone)):%Y%m%d-%H%M}.{kind}"
        body = export.csv_bytes(shown) if kind == "csv" else export.xlsx_bytes(shown, lang=lang)
        media = "text/csv; charset=utf-8" if kind == "csv" else XLSX_TYPE
        return 200, Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

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
            raise catalog.CatalogError(f"catalog refused, nothing imported: {error}") from None
        with self.store.transaction() as tx:
            written = catalog.replace_products(tx, products)
        return 200, {"imported": written}

    def whoami(self, request: ApiRequest) -> Answer:
        _filters(request.query, ())
        return 200, {"name": request.user, "role": request.role}

    def post_command(self, request: ApiRequest) -> Answer:
        """Queue a device command as the calling user; 202 with the audit row (poll it for the answer)."""
        body = _json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("device"), str) or not isinstance(
                body.get("command"), str):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, 'body must be {"device": "...", "command": "mode"|'
                            '"config"|"resend"|"reboot"|"time", "argument": ...}')
        with self.store.transaction() as tx:
            queued = control.issue(tx, body["device"], body["command"], body.get("argument"), by=request.user,
                                   now_ms=_now_ms())
        log.info("%s queued %s for %s", request.user, queued.kind, queued.device)
        self._commands_queued()
        return 202, queued.as_dict()

    def get_commands(self, request: ApiRequest) -> Answer:
        return 200, {"commands": self._command_rows(request.query, _COMMANDS_QUERY)}

    def _command_rows(self, query: Mapping[str, str], known: Iterable[str]) -> list[dict[str, object]]:
        """The audit log, newest first, with the device's result in Chinese (`result_zh`)."""
        _filters(query, known)
        device = query.get("device", "")
        if len(device) > 64 or not device.isprintable():
            raise HttpError(HTTPStatus.BAD_REQUEST, f"device must be printable text of at most 64 characters, "
                            f"got {device[:40]!r}")
        with self.store.reading() as tx:
            found = control.list_commands(tx, device=device, limit=_limit(query, most=1000))
        return [_command_row(command) for command in found]

    def get_command(self, request: ApiRequest) -> Answer:
        _filters(request.query, ())
        with self.store.reading() as tx:
            return 200, _command_row(control.get_command(tx, request.path["id"]))


def _filters(query: Mapping[str, str], known: Iterable[str]) -> filters.Filters:
    """The filters of `query`, after refusing (400) a parameter outside `known` and a filter that cannot be one."""
    filters.check_names(query, known)
    return filters.filters_of(query)


def _command_row(command: control.Command) -> dict[str, object]:
    return {**command.as_dict(), "result_zh": wording.command_result(command.result)}


def _limit(query: Mapping[str, str], *, most: int, default: int = 100) -> int:
    return filters.whole_number(query.get("limit", str(min(default, most))), "limit", 1, most)


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
    ("POST", "/api/v1/alerts/{id}", ApiServer.change_alert, "acknowledge"),
    ("GET", "/api/v1/alerts/{id}/evidence", ApiServer.get_evidence, "read"),
    ("GET", "/api/v1/devices", ApiServer.get_devices, "read"),
    ("GET", "/api/v1/quarantine", ApiServer.get_quarantine, "read"),
    ("POST", "/api/v1/tickets", ApiServer.post_ticket, "write"),
    ("POST", "/api/v1/tickets/check", ApiServer.check_ticket, "read"),
    ("PUT", "/api/v1/catalog", ApiServer.put_catalog, "write"),
    ("GET", "/api/v1/outbox", ApiServer.get_outbox, "read"),
    ("GET", "/api/v1/deadletters", ApiServer.get_dead_letters, "read"),
    ("POST", "/api/v1/deadletters/requeue", ApiServer.requeue_dead_letters, "write"),
    ("GET", "/api/v1/institutions", ApiServer.get_institutions, "read"),
    ("GET", "/api/v1/export", ApiServer.get_export, "read"),
    ("POST", "/api/v1/adjustments", ApiServer.post_adjustment, "write"),
    ("GET", "/api/v1/withdrawals", ApiServer.get_withdrawals, "read"),
    ("POST", "/api/v1/withdrawals", ApiServer.post_withdrawal, "write"),
    ("GET", "/api/v1/me", ApiServer.whoami, "read"),
    ("POST", "/api/v1/commands", ApiServer.post_command, "admin"),
    ("GET", "/api/v1/commands", ApiServer.get_commands, "read"),
    ("GET", "/api/v1/commands/{id}", ApiServer.get_command, "read"),
]
"""(method, path template, handler, least role): what openapi.py documents, route for route (write = admin)."""

BODY_CAPS: dict[tuple[str, str], int] = {
    ("POST", "/api/v1/alerts/{id}"): 16 * 1024,
    ("POST", "/api/v1/tickets"): 64 * 1024,
    ("POST", "/api/v1/tickets/check"): 64 * 1024,
    ("PUT", "/api/v1/catalog"): 4 * 1024 * 1024,
    ("POST", "/api/v1/deadletters/requeue"): 1024 * 1024,
    ("POST", "/api/v1/adjustments"): 64 * 1024,
    ("POST", "/api/v1/withdrawals"): 16 * 1024,
    ("POST", "/api/v1/commands"): 4 * 1024,
}
"""The largest body each route takes, in bytes (a ticket: as on MQTT); routes not listed take none."""

_PERIOD_QUERY = ("day", "window_h", "period", *filters.RANGE_NAMES)
_RATES_QUERY = ("scope", *_PERIOD_QUERY, *filters.FILTER_NAMES)
_SERIES_QUERY = ("step", "by", *_PERIOD_QUERY, *filters.FILTER_NAMES)
_ALERTS_QUERY = ("state", "type", "institution", "terminal", "limit")
_DEVICES_QUERY = ("institution", "terminal")
_DEAD_QUERY = ("limit",)
_WITHDRAWALS_QUERY = ("state", "limit")
_COMMANDS_QUERY = ("device", "limit")
_EXPORT_QUERY = ("table", "format", "lang", "sort", "desc")
_EXPORTED = {"institutions": _RATES_QUERY[1:], "terminals": _RATES_QUERY[1:], "alerts": _ALERTS_QUERY,
             "devices": _DEVICES_QUERY, "deadletters": _DEAD_QUERY, "commands": _COMMANDS_QUERY}
"""The parameters each endpoint takes; any other is refused with 400 (a misspelt filter must not widen an answer)."""
TREND_TERMINALS = 12
"""Terminals drawn at most in the trends chart (the busiest of the filters; `left_out` counts the others)."""
TREND_HOURS_MAX = 31 * 24
"""Hourly points per terminal cover at most this many hours."""
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
