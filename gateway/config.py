"""The gateway's configuration: a TOML file over embedded defaults, every key documented in docs/operations.md."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.ingest import IngestSettings

__all__ = ["Settings", "ConfigError", "load"]


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the key and the reason."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    data_dir: Path = Path("data")
    """Folder for the SQLite database (gateway.sqlite3)."""
    log_level: str = "INFO"
    ingest: IngestSettings = field(default_factory=IngestSettings)

    @property
    def database(self) -> Path:
        return self.data_dir / "gateway.sqlite3"


def _section(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    known = {item.name: item for item in fields(cls)}
    result: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")
        expected = known[key].default
        if isinstance(expected, bool) != isinstance(value, bool) or (
            isinstance(expected, (int, str)) and not isinstance(value, type(expected))
        ):
            raise ConfigError(f"{where}{key}: expected {type(expected).__name__}, got {value!r}")
        result[key] = value
    return result


def load(path: Path | None) -> Settings:
    """Settings from the TOML file at `path`, or the embedded defaults when `path` is None."""
    if path is None:
        return Settings()
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    ingest_values = values.pop("ingest", {})
    if not isinstance(ingest_values, dict):
        raise ConfigError(f"{path}: [ingest] must be a table")
    top: dict[str, Any] = {}
    for key, value in values.items():
        if key == "data_dir" and isinstance(value, str):
            top[key] = Path(value)
        elif key == "log_level" and isinstance(value, str):
            top[key] = value.upper()
        else:
            raise ConfigError(f"{path}: {key}: unknown key or wrong type ({value!r})")
    return Settings(**top, ingest=IngestSettings(**_section(IngestSettings, ingest_values, f"{path}: ingest.")))
