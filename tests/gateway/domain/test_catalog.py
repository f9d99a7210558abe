"""The product catalog from CSV: all rows or none, every bad line named."""

import pytest
from stores import fresh_location

from gateway.domain import catalog
from gateway.store.opening import open_store


def test_english_and_chinese_headers_and_gtin13():
    english = catalog.read_csv("pid,list_code,name,pack_size,code_required\n6901234567892,XC03,Insulin,1,yes\n")
    chinese = catalog.read_csv("\ufeff药品标识码,医保目录编码,名称,包装数量,需追溯码\n"
                               "8123456,XA01,阿莫西林胶囊,24,是\n")
    assert english[0].pid == "06901234567892" and english[0].code_required
    assert (chinese[0].name, chinese[0].pack_size) == ("阿莫西林胶囊", 24)
    assert catalog.read_csv("pid,list_code,name,pack_size\n8123456,XA01,A,24\n")[0].code_required


def test_every_bad_line_is_named_and_nothing_is_imported():
    text = ("pid,list_code,name,pack_size,code_required\n8123456,XA01,A,24,1\n,XA02,B,1,1\n8123457,XA03,C,0,1\n"
            "8123458,XA04,D,5,maybe\n8123456,XA05,E,1,1\n")
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.read_csv(text)
    message = str(caught.value)
    for expected in ("line 3: pid", "line 4: pack_size", "line 5: code_required", "line 6: pid '8123456' appears"):
        assert expected in message
    with pytest.raises(catalog.CatalogError, match="lacks list_code"):
        catalog.read_csv("pid,name,pack_size\n")
    with pytest.raises(catalog.CatalogError, match="empty"):
        catalog.read_csv("")


def test_import_updates_and_lookups(tmp_path):
    store = open_store(fresh_location(tmp_path))
    with store.transaction() as tx:
        catalog.replace_products(tx, catalog.read_csv("pid,list_code,name,pack_size,code_required\n"
                                                      "8123456,XA01,A,24,1\n8111111,XD04,Herbal,10,0\n"))
        catalog.replace_products(tx, catalog.read_csv("pid,list_code,name,pack_size\n8123456,XA01,A v2,12\n"))
        assert catalog.product_of(tx, "8123456").name == "A v2"
        assert catalog.product_of(tx, "nope") is None and catalog.product_of(tx, "") is None
        assert catalog.line_requires_code(tx, "XA01") and not catalog.line_requires_code(tx, "XD04")
        assert catalog.line_requires_code(tx, "NOT-IN-CATALOG")
    store.close()
