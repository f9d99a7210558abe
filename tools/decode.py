"""trace-decode: decode scanned lines as the counter device does, one JSON object per line.

    trace-decode ']d2010690123456789217261200102AB<GS>21XYZ123'
    some-scanner-dump | trace-decode --today 261122

In arguments, and in lines read from standard input, the text `<GS>` stands for the
GS separator (0x1D), which a keyboard cannot type. Exit status: 0 when every line
is a valid trace code, 1 when any is not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from tcagent.codec import codes, reasons

GS_TOKEN = b"<GS>"
GS1_FORMS = {"full": codes.GS1_FULL, "gtin-serial": codes.GS1_GTIN_SERIAL, "bracketed": codes.GS1_BRACKETED}


def describe(line: bytes, *, gs1_form: int = codes.GS1_FULL, today: str = "") -> dict[str, Any]:
    """Decode one line and return what a technician needs to see, JSON-ready."""
    scan = codes.decode(line.replace(GS_TOKEN, b"\x1d"), gs1_form, today)
    return {
        "input": line.decode("utf-8", "backslashreplace"),
        "kind": codes.KIND_NAMES[scan.kind],
        "valid": scan.err == reasons.OK,
        "error": reasons.NAMES[scan.err],
        "error_code": scan.err,
        "detail": scan.detail,
        "code": scan.code.decode(),
        "pid": scan.pid.decode(),
        "serial": scan.serial.decode(),
        "lot": scan.lot.decode(),
        "expiry": scan.expiry.decode(),
        "made": scan.made.decode(),
        "aim": scan.aim.decode(),
        "elements": [[ai.decode(), value.decode()] for ai, value in scan.elements],
    }


def _lines(arguments: list[str]) -> Iterator[bytes]:
    if arguments:
        yield from (argument.encode() for argument in arguments)
        return
    stdin: Iterable[bytes] = sys.stdin.buffer
    for raw in stdin:
        line = raw.rstrip(b"\r\n")
        if line:
            yield line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("lines", nargs="*", help="scanned lines; read from standard input when none are given")
    parser.add_argument("--gs1-form", choices=sorted(GS1_FORMS), default="full",
                        help="canonical form for GS1 codes (default: full element string)")
    parser.add_argument("--today", default="", metavar="YYMMDD", help="report codes past expiry as 'expired'")
    options = parser.parse_args(argv)
    if options.today and not (len(options.today) == 6 and options.today.isascii() and options.today.isdigit()):
        parser.error(f"--today wants YYMMDD, got {options.today!r}")
    all_valid = True
    for line in _lines(options.lines):
        result = describe(line, gs1_form=GS1_FORMS[options.gs1_form], today=options.today)
        all_valid &= result["valid"]
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0 if all_valid else 1


if __name__ == "__main__":
    sys.exit(main())
