"""One root for the agent's own exceptions (tcagent.codec.errors.AgentError), on both interpreters."""

EXPECTED = {"AgentError", "CBORError", "CoseError", "GS1Error", "MAError", "ConfigError", "JournalError",
            "JournalFull", "MQTTError", "CommandRefused"}


def test_every_exception_the_agent_defines_derives_from_agent_error(fw):
    found = fw.call("exception_classes")
    assert {name for _, name, _ in found} >= EXPECTED  # the listing sees them all
    assert [entry for entry in found if not entry[2]] == []
