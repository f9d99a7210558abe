"""A POS ticket as it arrives: its times and the field a refusal names."""

import pytest
from scenario import at

from gateway.wire.ticket import TicketError, parse_ticket


def test_parse_reads_iso_times_in_the_configured_zone_and_ms():
    body = {"number": "T1", "terminal": "A1", "time": "2026-11-22T09:00:00", "lines": [{"list_code": "XA01",
                                                                                        "quantity": 2}]}
    assert parse_ticket(body).time_ms == at(9)
    assert parse_ticket({**body, "time": "2026-11-22T01:00:00+00:00"}).time_ms == at(9)
    assert parse_ticket({**body, "time": at(9)}).lines[0].split is False


@pytest.mark.parametrize(("change", "message"), [
    ({"number": ""}, "number"), ({"number": "x" * 41}, "number"), ({"time": "yesterday"}, "time"),
    ({"lines": []}, "lines"), ({"lines": [{"list_code": "XA01", "quantity": 0}]}, "quantity"),
    ({"lines": [{"list_code": "XA01", "quantity": 1.5}]}, "quantity"),
    ({"lines": [{"list_code": "XA01", "quantity": 1, "split": "yes"}]}, "split"),
    ({"lines": [{"list_code": "XA01", "quantity": 1, "price": 3}]}, "line 1"), ({"extra": 1}, "unknown keys"),
    ({"time": 10**30}, "time must be from 2000"), ({"time": 1}, "time must be from 2000"),
    ({"time": -5}, "time"), ({"time": "9999-12-31T23:59:59"}, "time must be from 2000"),
    ({"time": "1999-12-31T23:59:59+00:00"}, "time"), ({"time": True}, "time"),
])
def test_parse_names_the_bad_field(change, message):
    body = {"number": "T1", "terminal": "A1", "time": at(9), "lines": [{"list_code": "XA01", "quantity": 1}]}
    with pytest.raises(TicketError, match=message) as caught:
        parse_ticket({**body, **change})
    assert caught.value.reason == "ticket_invalid"
