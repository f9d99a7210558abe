"""The device's MQTT topics (tcagent.codec.topics, on both interpreters) are the ones the gateway and the broker's
ACL use for that device.

The gateway spells its topics in gateway/wire/topics.py (its subscriptions `TOPICS`, the ack and the time command
it publishes); these tests drive the real admission on a real store to read the topics it answers on.
"""


import paho.mqtt.client as paho

from gateway.ingest.loop import Message
from gateway.wire.topics import TOPICS
from soaks.fuzz_ingest import GOOD_DEVICE, good_event
from tools.provision import acl_block


def _published(admission, messages):
    """What the gateway publishes after admitting `messages` [(topic, payload)]: [(topic, payload, qos)]."""
    batch = [Message(mid, 1, topic, payload, 1767225600000) for mid, (topic, payload) in enumerate(messages, 1)]
    published = []
    admission.commit(admission.sort(batch), lambda publishes, acks: published.extend(publishes))
    return published


def test_the_gateway_subscribes_to_what_the_device_publishes_and_not_to_what_it_reads(fw):
    topics = fw.call("device_topics", GOOD_DEVICE)
    assert set(topics.values()) == {f"tc/v1/{GOOD_DEVICE}/{name}" for name in ("ev", "status", "res", "ack", "cmd")}
    for name in ("ev", "status", "res"):
        assert [paho.topic_matches_sub(pattern, topics[name]) for pattern in TOPICS].count(True) == 1, name
    for name in ("ack", "cmd"):
        assert not any(paho.topic_matches_sub(pattern, topics[name]) for pattern in TOPICS), name


def test_the_gateway_acks_and_commands_on_the_topics_the_device_reads(fw, admission):
    topics = fw.call("device_topics", GOOD_DEVICE)
    never_synced = bytes.fromhex("a4" "0001" "01f5" "0700" "0800")  # {0: 1, 1: true, 7: clock 0, 8: last seq 0}
    published = _published(admission, [(topics["ev"], good_event(admission.good_key, 1)),
                                        (topics["status"], never_synced)])
    assert sorted(topic for topic, _, _ in published) == sorted([topics["ack"], topics["cmd"]])


def test_the_broker_acl_grants_the_device_its_topics_in_its_directions(fw):
    topics = fw.call("device_topics", GOOD_DEVICE)
    lines = acl_block(GOOD_DEVICE).splitlines()
    assert {line.split()[2] for line in lines if line.startswith("topic write")} == {
        topics["ev"], topics["status"], topics["res"]}
    assert {line.split()[2] for line in lines if line.startswith("topic read")} == {topics["ack"], topics["cmd"]}
