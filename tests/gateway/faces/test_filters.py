"""The dashboard's query parameters: ranges of days in the configured zone, filters, and unknown names refused."""

import doctest

import pytest

from gateway.faces import filters
from gateway.faces.filters import QueryError, check_names, day_range, filters_of

ZONE = "Asia/Shanghai"


def test_a_range_covers_whole_days_of_the_zone_both_ends_included():
    period = day_range({"from": "2026-11-01", "to": "2026-11-03"}, ZONE)
    assert period.label == "2026-11-01..2026-11-03"
    assert period.start_ms == 1_793_462_400_000  # 2026-11-01 00:00 +08:00
    assert period.end_ms - period.start_ms == 3 * 86_400_000
    assert day_range({}, ZONE) is None
    one = day_range({"from": "2026-11-01", "to": "2026-11-01"}, ZONE)
    assert one.end_ms - one.start_ms == 86_400_000


@pytest.mark.parametrize(("query", "said"), [
    ({"from": "2026-11-01"}, "from and to go together"),
    ({"to": "2026-11-01"}, "only to came"),
    ({"from": "2026-11-03", "to": "2026-11-01"}, "must not be after"),
    ({"from": "2026-1-3", "to": "2026-11-01"}, "from must be a day YYYY-MM-DD"),
    ({"from": "2026-11-01", "to": "2026-13-01"}, "to must be a day"),
    ({"from": "1999-12-31", "to": "2026-11-01"}, "from 2000 to 2099"),
    ({"from": "2025-01-01", "to": "2026-11-01"}, "spans 670 days; at most 366"),
])
def test_a_bad_range_is_named(query, said):
    with pytest.raises(QueryError, match=said):
        day_range(query, ZONE)


def test_filters_are_checked():
    assert filters_of({}) == filters.Filters()
    assert filters_of({"terminal": "收银台 1"}).terminal == "收银台 1"
    for query, said in (({"institution": "x" * 65}, "at most 64"), ({"terminal": "A\n1"}, "printable"),
                        ({"region": " 4403"}, "surrounding spaces"), ({"institution_type": "clinic"}, "pharmacy or")):
        with pytest.raises(QueryError, match=said):
            filters_of(query)


def test_unknown_names_are_refused_with_what_is_known():
    check_names({"from": "x"}, ("from", "to"))
    with pytest.raises(QueryError, match=r"unknown parameter 'form' \(this endpoint takes: from, to\)"):
        check_names({"form": "2026-11-01"}, ("from", "to"))


def test_the_examples_in_the_docstrings_hold():
    assert doctest.testmod(filters).failed == 0
