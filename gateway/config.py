"""The gateway's configuration: a TOML file over embedded defaults, every key documented in docs/operations.md."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import GatewayError
from gateway.rules import Rules
from gateway.settings import ApiSettings, DashboardSettings, ForwardSettings, IngestSettings

__all__ = ["Settings", "ConfigError", "load", "SECTIONS"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(GatewayError, ValueError):
    """A configuration file that cannot be used, with the key and the reason."""

    kind = "unusable"


@dataclass(frozen=True, kw_only=True)
class Settings:
    data_dir: Path = Path("data")
    """Folder for the SQLite database (gateway.sqlite3) and the API token files."""
    database: str = ""
    """A postgresql:// URL (several instances share it), or a SQLite file; empty: data_dir/gateway.sqlite3."""
    log_level: str = "INFO"
    ingest: IngestSettings = field(default_factory=IngestSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    rules: Rules = field(default_factory=Rules)
    forward: ForwardSettings = field(default_factory=ForwardSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)

    @property
    def store_location(self) -> str:
        return self.database or str(self.data_dir / "gateway.sqlite3")


SECTIONS: dict[str, type] = {"ingest": IngestSettings, "api": ApiSettings, "rules": Rules, "forward": ForwardSettings,
                             "dashboard": DashboardSettings}
"""TOML table -> the settings class it fills."""


def _section(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    known = {item.name: item for item in fields(cls)}
    result: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")
        if key in ("defaults", "institutions"):
            result[key] = _text_tables(value, f"{where}{key}", depth=1 if key == "defaults" else 2)
            continue
        expected: Any = known[key].default
        if isinstance(expected, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(expected, bool) != isinstance(value, bool) or not isinstance(value, type(expected)):
            raise ConfigError(f"{where}{key}: expected {type(expected).__name__}, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}{key}: must not be negative, got {value}")
        if key.endswith("port") and not 0 <= value <= 65535:
            raise ConfigError(f"{where}{key}: a TCP port is 0-65535, got {value}")
        result[key] = value
    return result


def _text_tables(value: object, where: str, *, depth: int) -> Any:
    """A table of text values (depth 1), or a table of such tables (depth 2)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")
    if depth == 1:
        for key, item in value.items():
            if not isinstance(item, str):
                raise ConfigError(f"{where}.{key}: expected text, got {item!r}")
        return dict(value)
    return {key: _text_tables(item, f"{where}.{key}", depth=1) for key, item in value.items()}


def _client_id_of_user(ingest: IngestSettings, client_id_given: bool, path: Path) -> IngestSettings:
    """The broker replaces a client's id with its user name (use_username_as_clientid in the shipped
    mosquitto.conf.in), so the gateway's session and its `instance` label are its username: a client_id left
    out takes it, a different one is refused (the gateway would label events with an id the broker never used)."""
    if not ingest.username:
        return ingest
    if not client_id_given:
        return replace(ingest, client_id=ingest.username)
    if ingest.client_id != ingest.username:
        raise ConfigError(f"{path}: ingest.client_id: must equal ingest.username {ingest.username!r} (the broker "
                          f"uses the user name as the client id), got {ingest.client_id!r}; leave client_id out")
    return ingest


BROKER_INFLIGHT_WINDOW = 1000
"""max_inflight_messages of the shipped Mosquitto configuration (gateway/mosquitto.conf.in)."""


def _check_across(path: Path, top: dict[str, Any], sections: dict[str, Any]) -> None:
    """Settings that are each valid but wrong together, or that name something missing."""
    database = top.get("database", "")
    if "://" in database and not database.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{path}: database: a postgresql:// URL or the path of a SQLite file, got "
                          f"{database.split('://')[0]}://...")
    ingest = sections["ingest"]
    if ingest.batch_max > BROKER_INFLIGHT_WINDOW:
        raise ConfigError(f"{path}: ingest.batch_max: {ingest.batch_max} is above the broker's in-flight window "
                          f"({BROKER_INFLIGHT_WINDOW} in the shipped mosquitto.conf): a batch would wait for "
                          "messages the broker holds back; keep it at most that")
    if ingest.batch_max < 1:
        raise ConfigError(f"{path}: ingest.batch_max: must be at least 1")
    board = sections["dashboard"]
    for rate in ("coverage", "valid_scan", "upload", "duplicate", "consistency"):
        good, warn = getattr(board, f"{rate}_good"), getattr(board, f"{rate}_warn")
        if not (0 <= good <= 1 and 0 <= warn <= 1):
            raise ConfigError(f"{path}: dashboard.{rate}_good and _warn are rates from 0 to 1, got {good}, {warn}")
        lower_is_better = rate in ("duplicate", "consistency")
        if (good > warn) if lower_is_better else (good < warn):
            order = "at most" if lower_is_better else "at least"
            raise ConfigError(f"{path}: dashboard.{rate}_good ({good}) must be {order} {rate}_warn ({warn}): "
                              "green must be the better side of amber")
    ca_file = sections["forward"].ca_file
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"{path}: forward.ca_file: no such file {ca_file!r} (the CA that signs the platform's "
                          "certificate, PEM)")


def load(path: Path | None) -> Settings:
    """Settings from the TOML file at `path`, or the embedded defaults when `path` is None."""
    if path is None:
        return Settings()
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a TOML file is)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    sections: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for name, cls in SECTIONS.items():
        table = tables[name] = values.pop(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        sections[name] = cls(**_section(cls, table, f"{path}: {name}."))
    sections["ingest"] = _client_id_of_user(sections["ingest"], "client_id" in tables["ingest"], path)
    top: dict[str, Any] = {}
    for key, value in values.items():
        if key == "data_dir" and isinstance(value, str) and value:
            top[key] = Path(value)
        elif key == "database" and isinstance(value, str):
            top[key] = value
        elif key == "log_level" and isinstance(value, str) and value.upper() in _LOG_LEVELS:
            top[key] = value.upper()
        else:
            raise ConfigError(f"{path}: {key}: unknown key or bad value {value!r} (top-level keys: data_dir, "
                              f"database, log_level one of {', '.join(_LOG_LEVELS)})")
    try:
        ZoneInfo(sections["rules"].timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: rules.timezone: unknown time zone {sections['rules'].timezone!r}") from None
    for name in ("rolling_window_h", "sweep_interval_s", "mac_failure_burst", "seq_window"):
        if getattr(sections["rules"], name) < 1:
            raise ConfigError(f"{path}: rules.{name}: must be at least 1")
    for name in ("quarantine_max_rows", "quarantine_max_bytes"):
        if getattr(sections["ingest"], name) < 1:
            raise ConfigError(f"{path}: ingest.{name}: must be at least 1")
    _check_across(path, top, sections)
    forward = sections["forward"]
    try:
        re.compile(forward.sign_in_refusal)
    except re.error as error:
        raise ConfigError(f"{path}: forward.sign_in_refusal: not a regular expression: {error}") from None
    if forward.signer not in ("none", "tif"):
        raise ConfigError(f"{path}: forward.signer: none or tif, got {forward.signer!r}")
    if forward.base_url and not forward.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: forward.base_url: expected http(s)://..., got {forward.base_url!r}")
    for name in ("batch_size", "concurrency", "timeout_ms", "breaker_failures"):
        if getattr(forward, name) < 1:
            raise ConfigError(f"{path}: forward.{name}: must be at least 1")
    if forward.batch_size > 500:
        raise ConfigError(f"{path}: forward.batch_size: at most 500 rows per request")
    return Settings(**top, **sections)
