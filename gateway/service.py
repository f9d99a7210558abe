"""The running gateway: store, ingest, API, the time-based rules and the systemd watchdog, until SIGTERM."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from gateway import config, systemd
from gateway.config import Settings
from gateway.domain import pipeline
from gateway.errors import GatewayError
from gateway.faces.api import ApiServer
from gateway.ingest.command_sender import CommandSender
from gateway.ingest.loop import Ingest
from gateway.metrics import Metrics
from gateway.outbound.forwarder import Forwarder
from gateway.store.base import Store
from gateway.store.opening import open_store

__all__ = ["run", "token_file", "ServiceError"]

log = logging.getLogger("gateway")


class ServiceError(GatewayError, RuntimeError):
    """The service cannot start: what, where and what to do, in one line."""

    kind = "unusable"


def token_file(path: Path) -> str:
    """The token kept in `path`, made (owner-only) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    log.info("made API token %s", path)
    return token


class _Quota(logging.Filter):
    """At most `per_window` records of one message template every `window_s`: a loop that fails the same way
    (asyncio's accept when descriptors run out, say) must not fill the disk with the same traceback."""

    def __init__(self, per_window: int = 5, window_s: float = 10.0) -> None:
        super().__init__()
        self.per_window, self.window_s = per_window, window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        started, count = self._seen.get(str(record.msg), (now, 0))
        if now - started >= self.window_s:
            started, count = now, 0
        self._seen[str(record.msg)] = (started, count + 1)
        return count < self.per_window


def _open_files_to_the_hard_limit() -> None:
    """Raise the soft limit on open descriptors to the hard one: every API client holds one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as error:  # a sandbox that forbids it: run with what there is
            log.warning("open files stay at %d (raising to %d refused: %s)", soft, hard, error)


def run(settings: Settings, *, config_path: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads `config_path` (see `_Reloader`)."""
    _open_files_to_the_hard_limit()
    for name in ("asyncio", "hypercorn.error", "gateway.api.server"):
        logging.getLogger(name).addFilter(_Quota())
    store = open_store(settings.store_location)
    metrics = Metrics(store)
    ingest = Ingest(settings.ingest, store, settings.rules, metrics)
    sender = CommandSender(store, ingest.publish, instance=settings.ingest.client_id)
    stop = threading.Event()
    reload = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    signal.signal(signal.SIGINT, lambda number, frame: stop.set())
    signal.signal(signal.SIGHUP, lambda number, frame: reload.set())
    forwarder = None
    if settings.forward.enabled:
        forwarder = Forwarder(settings.forward, store, timezone=settings.rules.timezone,
                              instance=settings.ingest.client_id, metrics=metrics)
    api = None
    if settings.api.enabled:
        try:
            api = ApiServer(settings.api, store, settings.rules, metrics,
                            read_token=settings.api.token or token_file(settings.data_dir / "api-token"),
                            write_token=settings.api.write_token or token_file(settings.data_dir / "api-write-token"),
                            ready=lambda: {"broker": ingest.connected, "ingest": ingest.alive,
                                           **({"forwarder": forwarder.alive} if forwarder else {})},
                            board=settings.dashboard, institution_names={
                                code: values.get("fixmedins_name", "")
                                for code, values in settings.forward.institutions.items()},
                            sale_hold_ms=settings.forward.sale_hold_s * 1000, commands_queued=sender.nudge)
        except OSError as error:
            store.close()
            raise ServiceError(f"api: cannot listen on {settings.api.host}:{settings.api.port}: {error.strerror}; "
                               "another process holds the port, or set api.port (0 = any free port)") from None
        api.start()
    ingest.start()
    sender.start()
    if forwarder:
        forwarder.start()
    log.info("gateway running, database %s, API %s, forwarding %s", _shown(settings.store_location),
             f"http://{settings.api.host}:{api.port}" if api else "off", settings.forward.base_url or "off")
    print("ready", flush=True)
    systemd.notify("READY=1\nSTATUS=ingesting")
    reloader = _Reloader(settings, config_path, ingest, api)
    _loop(reloader, store, lambda: ingest.alive and (forwarder is None or forwarder.alive), stop, reload)
    systemd.notify("STOPPING=1")
    sender.stop()
    ingest.stop()
    if forwarder:
        forwarder.stop()
    if api:
        api.stop()
    store.close()
    log.info("gateway stopped: %s", dict(ingest.counts))
    return 0


def _shown(location: str) -> str:
    """The store's location without a password."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", location)


class _Reloader:
    """SIGHUP: read the configuration file again and apply what can change while running: `[rules]`,
    `[dashboard]` and `log_level`. A change to anything else is named in the log as waiting for a restart; a file
    that does not load is refused in the log and the running settings stay."""

    _LIVE = ("rules", "dashboard", "log_level")

    def __init__(self, settings: Settings, path: Path | None, ingest: Ingest, api: ApiServer | None) -> None:
        self.settings, self._path, self._ingest, self._api = settings, path, ingest, api

    def reload(self) -> None:
        systemd.notify("RELOADING=1")
        try:
            if self._path is None:
                log.warning("reload: the gateway runs on embedded defaults, there is no file to read")
                return
            try:
                new = config.load(self._path)
            except config.ConfigError as error:
                log.error("reload refused, the running settings stay: %s", error)
                return
            old = self.settings
            changed = [item.name for item in fields(Settings) if getattr(new, item.name) != getattr(old, item.name)]
            waiting = [name for name in changed if name not in self._LIVE]
            live = dataclasses.replace(old, rules=new.rules, dashboard=new.dashboard, log_level=new.log_level)
            self.settings = live
            self._ingest.admission.rules = live.rules
            if self._api is not None:
                self._api.rules, self._api.board = live.rules, live.dashboard
            logging.getLogger().setLevel(live.log_level)
            log.info("reloaded %s: applied %s%s", self._path,
                     ", ".join(name for name in changed if name in self._LIVE) or "nothing (unchanged)",
                     f"; {', '.join(waiting)} changed and take effect at the next restart" if waiting else "")
        finally:
            systemd.notify("READY=1")


def _loop(reloader: _Reloader, store: Store, alive: Callable[[], bool], stop: threading.Event,
          reload: threading.Event) -> None:
    """Run the sweeps on time, reload on SIGHUP, and ping the watchdog only while ingest, forwarding and the
    database work."""
    ping_s = systemd.watchdog_interval_s()
    next_sweep = 0.0
    while not stop.wait(min(1.0, ping_s) if ping_s else 1.0):
        if reload.is_set():
            reload.clear()
            reloader.reload()
        settings = reloader.settings
        now = time.monotonic()
        healthy = alive()
        if now >= next_sweep:
            next_sweep = now + settings.rules.sweep_interval_s
            try:
                pipeline.sweep(store, settings.rules, now_ms=time.time_ns() // 1_000_000)
            except Exception:  # a failed sweep is retried next time; a database that keeps failing stops the pings
                log.exception("sweep failed")
                healthy = False
        if ping_s and healthy:
            systemd.notify("WATCHDOG=1")
