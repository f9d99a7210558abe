"""The gateway under faults: kill -9 during a burst, and a flood of bad messages beside good ones."""

import os

import cbor2
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from stores import fresh_database

from soaks.gateway_kills import SoakOptions, soak
from system.fixtures import wait_until


@pytest.mark.on_builds
def test_kill_9_of_the_gateway_during_a_burst_loses_nothing_and_doubles_nothing(tmp_path, micropython_build):
    """A few rounds of the soak (python -m soaks.gateway_kills): the gateway killed twice, its MQTT child once, while
    the firmware on micropython and two simulated counters sell; a short ack timeout makes them resend."""
    options = SoakOptions(rounds=3, link_every=3, devices=2, firmware_devices=1, rate=150, up_s=(0.2, 0.8),
                          down_s=(0.1, 1.0), ack_timeout_s=1, micropython_build=micropython_build)
    result = soak(tmp_path, options, database=fresh_database())
    print(result.summary())
    assert result.ok, result.summary()
    assert result.gateway_kills == 2 and result.link_kills == 1 and result.published > 100


def _publish_all(port, messages):
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{os.getpid()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def signed_vector():
    import json
    from pathlib import Path

    vector = json.loads((Path(__file__).parents[1] / "vectors" / "protocol_v1.json").read_text())
    return bytes.fromhex(vector["key_hex"]), bytes.fromhex(vector["mac0_hex"]), bytes.fromhex(vector["event_hex"])


def test_every_rejection_is_quarantined_with_its_reason_and_good_events_still_flow(gateway, broker, make_device,
                                                                                   signed_vector):
    key, message, payload = signed_vector
    gateway.register("dev-0001", key)
    gateway.register("dev-0002", os.urandom(32))
    gateway.start()
    tampered = bytearray(message)
    tampered[50] ^= 1
    unknown_event = cbor2.loads(payload)
    unknown_event[1] = "dev-9999"
    bad_schema = cbor2.loads(payload)
    bad_schema[7] = 42
    from pycose.headers import KID, Algorithm
    from pycose.keys import SymmetricKey
    from pycose.messages import Mac0Message

    def sign(fields, kid=b"dev-0001"):
        mac0 = Mac0Message(phdr={Algorithm: "HMAC_256"}, uhdr={KID: kid}, payload=cbor2.dumps(fields))
        mac0.key = SymmetricKey(k=key)
        return mac0.encode()

    replay = cbor2.loads(payload)
    replay[13] = "OTHER"  # seq 42 again, other content
    bad = [
        ("tc/v1/dev-0001/ev", bytes(tampered), "bad_mac"),
        ("tc/v1/dev-0002/ev", message, "kid_mismatch"),
        ("tc/v1/dev-9999/ev", sign(unknown_event, b"dev-9999"), "unknown_device"),
        ("tc/v1/dev-0001/ev", b"\xd1\x84\x43", "malformed_cbor"),
        ("tc/v1/dev-0001/ev", sign(bad_schema), "schema"),
        ("tc/v1/dev-0001/ev", b"\xd1" + b"\x00" * 2000, "oversized"),
        ("tc/v1/dev-0001/ev", cbor2.dumps([1, 2]), "not_mac0"),  # a "batch" of two non-messages
    ]
    flood = [(topic, data) for topic, data, _ in bad] * 50
    _publish_all(broker.port, flood[:200] + [("tc/v1/dev-0001/ev", message)] + flood[200:])
    assert wait_until(lambda: len(gateway.events("dev-0001")) == 1, 30)
    _publish_all(broker.port, [("tc/v1/dev-0001/ev", sign(replay))])
    expected = {reason for _, _, reason in bad} | {"replay"}
    assert wait_until(lambda: {row[0] for row in gateway.quarantine()} >= expected, 30), gateway.quarantine()
    counts = {row[0]: row[2] for row in gateway.quarantine()}
    assert counts["bad_mac"] == 50 and counts["replay"] == 1  # kept once, counted each time
    assert [seq for seq, _, _ in gateway.events("dev-0001")] == [42]
