"""The coverage dashboard: its static files (shipped in the package, nothing from a CDN) and its thresholds.

The page (gateway/faces/dashboard_files/) is served at /dashboard/ by the API server without a token; everything
it shows comes from the API with the token the user signs in with (the read token to look, the write token to
acknowledge or resolve alerts). Labels in Chinese and English live in one file, dashboard_files/labels.json.
"""

from __future__ import annotations

from pathlib import Path

from gateway.settings import DashboardSettings

__all__ = ["static_file", "thresholds"]

_ROOT = Path(__file__).resolve().parent / "dashboard_files"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json; charset=utf-8",
          ".md": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8"}


def thresholds(settings: DashboardSettings) -> dict[str, object]:
    """What the page colours against, keyed by the rate names of the API."""
    def higher(good: float, warn: float) -> dict[str, object]:
        return {"good": good, "warn": warn, "higher_is_better": True}

    def lower(good: float, warn: float) -> dict[str, object]:
        return {"good": good, "warn": warn, "higher_is_better": False}

    return {
        "coverage": higher(settings.coverage_good, settings.coverage_warn),
        "valid_scan_rate": higher(settings.valid_scan_good, settings.valid_scan_warn),
        "upload_rate": higher(settings.upload_good, settings.upload_warn),
        "duplicate_rate": lower(settings.duplicate_good, settings.duplicate_warn),
        "consistency_error_rate": lower(settings.consistency_good, settings.consistency_warn),
        "swap_rate": lower(settings.swap_good, settings.swap_warn),
        "backlog_warn": settings.backlog_warn,
    }


def static_file(path: str) -> tuple[bytes, str] | None:
    """(content, content type) of a dashboard file for a URL path under /dashboard/, or None."""
    relative = path.removeprefix("/dashboard").lstrip("/") or "index.html"
    try:
        target = (_ROOT / relative).resolve()
        if _ROOT not in target.parents or not target.is_file():
            return None
    except (OSError, ValueError):  # a NUL in the path, a name too long for the file system
        return None
    return target.read_bytes(), _TYPES.get(target.suffix, "application/octet-stream")
