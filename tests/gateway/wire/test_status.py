"""The retained status map: what it holds, and every malformed one refused as status_malformed."""

import cbor2
import pytest

from gateway.wire.protocol import ProtocolError
from gateway.wire.status import parse_status

GOOD = {0: 1, 1: True, 2: "0.3.0", 3: 60, 4: 0, 5: 50000, 6: 3, 7: 1, 8: 3, 9: 2, 10: 700, 11: 65536, 12: 0, 13: 1,
        14: {0: 3}}


def test_parse_reads_the_protocol_map_and_refuses_others():
    status = parse_status("dev-a", cbor2.dumps(GOOD))
    assert (status.firmware, status.backlog, status.last_seq, status.clock, status.online) == ("0.3.0", 0, 3, 1, True)
    assert parse_status("dev-a", cbor2.dumps({0: 1, 1: False})).online is False
    for bad in (b"\xff", cbor2.dumps([1]), cbor2.dumps({0: 2, 1: True}), cbor2.dumps({**GOOD, 4: -1}),
                cbor2.dumps({**GOOD, 2: 5}), cbor2.dumps({**GOOD, 4: True})):
        with pytest.raises(ProtocolError) as caught:
            parse_status("dev-a", bad)
        assert caught.value.reason == "status_malformed"
    with pytest.raises(ProtocolError, match="oversized"):
        parse_status("dev-a", cbor2.dumps({**GOOD, 2: "x" * 2000}))
