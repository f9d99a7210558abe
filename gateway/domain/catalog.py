"""The product catalog: product identifier (or GTIN) -> insurance list code, name, pack size, code required.

Imported from CSV, all rows or none. Columns (English or Chinese header, any order):

| column | also | meaning |
|---|---|---|
| `pid` | `药品标识码`, `gtin` | 7-digit prefix of a 20-digit code, GTIN (13 or 14 digits), or MA product id |
| `list_code` | `医保目录编码` | insurance list code (`med_list_codg`), what POS ticket lines carry |
| `name` | `名称` | product name |
| `pack_size` | `包装数量` | units in one pack, the allowance for split (拆零) sales |
| `code_required` | `需追溯码` | 1/0, yes/no, true/false, 是/否: whether a sale needs a scanned code |

>>> read_csv("pid,list_code,name,pack_size,code_required\\n8123456,XA01,Aspirin,20,1\\n")[0].pack_size
20
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.store.base import Tx
from gateway.wire.protocol import storable

__all__ = ["Product", "CatalogError", "read_csv", "replace_products", "is_empty", "product_of", "name_of",
           "line_requires_code"]

_COLUMNS = {
    "pid": "pid", "gtin": "pid", "药品标识码": "pid",
    "list_code": "list_code", "医保目录编码": "list_code",
    "name": "name", "名称": "name",
    "pack_size": "pack_size", "包装数量": "pack_size",
    "code_required": "code_required", "需追溯码": "code_required",
}
_TRUE = {"1", "yes", "true", "y", "是"}
_FALSE = {"0", "no", "false", "n", "否"}


class CatalogError(GatewayError, ValueError):
    """A catalog file that cannot be imported; names every bad line."""


@dataclass(frozen=True, kw_only=True)
class Product:
    pid: str
    """As the scanner reports it: 7 digits, GTIN-14, or MA.country.class.registrant.product."""
    list_code: str
    """Insurance list code (med_list_codg), at most 50 characters."""
    name: str
    pack_size: int
    """Units in one pack: a split-pack code may be sold until this many units are gone."""
    code_required: bool = True


def _pid(text: str) -> str:
    """GTIN-13 (as printed under many EAN barcodes) becomes the GTIN-14 that GS1 scans carry."""
    return text.zfill(14) if len(text) == 13 and text.isdigit() else text


def read_csv(text: str) -> list[Product]:
    """Products from CSV text; CatalogError listing every bad line when any is bad."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise CatalogError("empty catalog: expected a header line")
    names = [_COLUMNS.get(column.strip().lower(), _COLUMNS.get(column.strip(), "")) for column in header]
    missing = {"pid", "list_code", "name", "pack_size"} - set(names)
    if missing:
        raise CatalogError(f"header {header!r} lacks {', '.join(sorted(missing))}")
    products: list[Product] = []
    problems: list[str] = []
    seen: set[str] = set()
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {name: cell.strip() for name, cell in zip(names, row, strict=False) if name}
        try:
            products.append(_product(values, seen))
        except ValueError as error:
            problems.append(f"line {line_no}: {error}")
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise CatalogError("; ".join(problems[:20]) + more)
    return products


def _product(values: dict[str, str], seen: set[str]) -> Product:
    for column, value in values.items():
        if not storable(value):
            raise ValueError(f"{column} holds a NUL or a lone surrogate")
    pid = _pid(values.get("pid", ""))
    if not 1 <= len(pid) <= 64:
        raise ValueError(f"pid {pid!r} must be 1-64 characters")
    if pid in seen:
        raise ValueError(f"pid {pid!r} appears twice")
    seen.add(pid)
    list_code = values.get("list_code", "")
    if not 1 <= len(list_code) <= 50:
        raise ValueError(f"list_code {list_code!r} must be 1-50 characters")
    name = values.get("name", "")
    if not 1 <= len(name) <= 200:
        raise ValueError("name must be 1-200 characters")
    pack_text = values.get("pack_size", "")
    if not (pack_text.isascii() and pack_text.isdigit()) or not 1 <= int(pack_text) <= 100_000:
        raise ValueError(f"pack_size {pack_text[:20]!r} must be a whole number of units, 1 to 100000")
    required_text = values.get("code_required", "1").lower()
    if required_text not in _TRUE | _FALSE:
        raise ValueError(f"code_required {required_text!r} must be 1/0, yes/no, true/false or 是/否")
    return Product(pid=pid, list_code=list_code, name=name, pack_size=int(pack_text),
                   code_required=required_text in _TRUE)


def replace_products(tx: Tx, products: Iterable[Product]) -> int:
    """Insert or update the given products (others stay); the number written."""
    written = 0
    for product in products:
        tx.execute(
            "INSERT INTO products (pid, list_code, name, pack_size, code_required) VALUES (?,?,?,?,?) "
            "ON CONFLICT (pid) DO UPDATE SET list_code = excluded.list_code, name = excluded.name, "
            "pack_size = excluded.pack_size, code_required = excluded.code_required",
            (product.pid, product.list_code, product.name, product.pack_size, int(product.code_required)),
        )
        written += 1
    return written


def is_empty(tx: Tx) -> bool:
    """No product loaded: then no scan is judged an unknown product."""
    return tx.one("SELECT 1 FROM products LIMIT 1") is None


def product_of(tx: Tx, pid: str) -> Product | None:
    if not pid:
        return None
    row = tx.one("SELECT list_code, name, pack_size, code_required FROM products WHERE pid = ?", (pid,))
    if row is None:
        return None
    return Product(pid=pid, list_code=row[0], name=row[1], pack_size=row[2], code_required=bool(row[3]))


def name_of(tx: Tx, list_code: str) -> str:
    """The name of a product of `list_code` (the first by pid); blank when the catalog has none."""
    row = tx.one("SELECT name FROM products WHERE list_code = ? ORDER BY pid LIMIT 1", (list_code,))
    return row[0] if row else ""


def line_requires_code(tx: Tx, list_code: str) -> bool:
    """Whether a ticket line of this list code needs a scan; a list code the catalog lacks does (应采尽采)."""
    row = tx.one("SELECT max(code_required), count(*) FROM products WHERE list_code = ?", (list_code,))
    return row is None or row[1] == 0 or bool(row[0])
