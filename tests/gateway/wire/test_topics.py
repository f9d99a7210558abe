"""Topics: what a topic names, and the topics the gateway answers on."""

import pytest

from gateway.wire import topics


@pytest.mark.parametrize(("topic", "routed"), [
    ("tc/v1/dev-1/ev", ("ev", "dev-1")), ("tc/v1/dev-1/status", ("status", "dev-1")),
    ("tc/v1/dev-1/res", ("res", "dev-1")), ("tc/v1/pos/T01/ticket", ("ticket", "T01")),
    ("tc/v1//ev", ("", "")), ("tc/v1/dev-1/ack", ("", "")), ("tc/v2/dev-1/ev", ("", "")),
    ("tc/v1/pos//ticket", ("", "")), ("tc/v1/dev-1/ev/extra", ("", "")), ("", ("", "")),
])
def test_route_names_the_kind_and_the_device_or_terminal(topic, routed):
    assert topics.route(topic) == routed


def test_every_topic_built_is_one_the_gateway_or_the_device_routes():
    assert topics.route(topics.events("dev-1")) == ("ev", "dev-1")
    assert topics.route(topics.status("dev-1")) == ("status", "dev-1")
    assert (topics.ack("dev-1"), topics.command("dev-1")) == ("tc/v1/dev-1/ack", "tc/v1/dev-1/cmd")
    assert all(topic.replace("+", "x") and topics.route(topic.replace("+", "x"))[0] for topic in topics.TOPICS)
