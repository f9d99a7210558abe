"""The codes of the technicians' printed test sheet (tools/barcode_sheet.py) as a scan engine sends them, and
what the counter must signal for each."""

from __future__ import annotations

from tools.barcode_sheet import ITEMS

SHEET = [(item.label_en, item.scanned, item.local, item.verdict) for item in ITEMS if item.verdict]
"""(label, text the engine sends, the agent's own "err=N" or "" when valid, the gateway's verdict signal)."""
MODE_BARCODES = [(item.scanned, item.local) for item in ITEMS if item.key.startswith("mode_")]
