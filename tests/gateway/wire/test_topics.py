"""Topics: what a topic names, and the topics the gateway answers on."""

import ast
from pathlib import Path

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


def test_a_device_may_write_its_own_topics_and_read_the_gateways_answers():
    acl = topics.device_acl("dev-1").splitlines()
    assert acl == ["topic write tc/v1/dev-1/ev", "topic write tc/v1/dev-1/status", "topic write tc/v1/dev-1/res",
                   "topic read tc/v1/dev-1/ack", "topic read tc/v1/dev-1/cmd"]
    assert topics.route(topics.answers("dev-1")) == ("res", "dev-1")


ROOT = Path(__file__).resolve().parents[3]
OWNERS = {ROOT / "gateway" / "wire" / "topics.py", ROOT / "firmware" / "tcagent" / "codec" / "topics.py"}


def _spelt_topics(path: Path) -> list[str]:
    """The code's string pieces holding `tc/v1/` (docstrings, which may name a topic in prose, left out)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "tc/v1/" in node.value
            and id(node) not in docstrings]


def test_only_the_two_topic_modules_spell_a_topic():
    """One owner per side: the gateway's wire/topics.py and the device's codec/topics.py (their agreement is
    tests/firmware/test_topics.py); the installed tools take theirs from the gateway."""
    files = [*(ROOT / "gateway").rglob("*.py"), *(ROOT / "tools").rglob("*.py"),
             *(ROOT / "firmware" / "tcagent").rglob("*.py")]
    assert [place for path in files if path not in OWNERS for place in _spelt_topics(path)] == []
    assert all(_spelt_topics(path) for path in OWNERS)  # the check sees the owners' own spelling
