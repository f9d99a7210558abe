"""The codes of the technicians' test sheet and what the counter must signal for each (scanned in sale mode)."""

from __future__ import annotations

GS = "\x1d"

SHEET = [
    # (label, text the scan engine sends, expected local signal after "taken", gateway verdict signal)
    ("20-digit code (Code 128)", "81234567890123456789", None, "ok"),
    ("GS1 DataMatrix, valid", f"]d2010690123456789217261200102AB{GS}21XYZ123", None, "ok"),
    ("GS1 DataMatrix, bad check digit", f"]d2010690123456789317261200102AB{GS}21XYZ124", "err=14", "invalid"),
    ("GS1 DataMatrix, expired", f"]d2010690123456789217200131102AB{GS}21XYZ125", "err=21", "invalid"),
    ("GS1 DataMatrix, no serial", "]d2010690123456789217261200102AB", "err=18", "invalid"),
    ("MA code", "]Q1MA.156.M0.100023.10010001.S210512001.L200501.E20280430.C2", None, "ok"),
    ("MA code without serial", "MA.156.M0.100023.10010001.L200501.E20280430", "err=20", "invalid"),
    ("retail EAN-13 (not a trace code)", "6901234567892", "err=7", "invalid"),
    ("19 digits", "8123456789012345678", "err=5", "invalid"),
]
MODE_BARCODES = [("TC:MODE:RETURN", "mode 2"), ("TC:MODE:PURCHASE", "mode 3"), ("TC:MODE:SALE", "mode 1")]
