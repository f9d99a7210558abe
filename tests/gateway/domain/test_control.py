"""Device control on the gateway: commands checked and queued with who asked, claimed once, expired when nobody
sent them, and answered by the device's signed answer (made here by the firmware's own code)."""

import pytest
from scenario import one_counter

from gateway.domain import control, pipeline
from gateway.domain.pipeline import AnswerIn
from gateway.wire.commands import CommandType, Result, check_argument, parse_answer
from gateway.wire.protocol import ProtocolError, verify_mac0
from tcagent.codec import cbor, cose

KEY = bytes(32)  # Scenario.counter registers its devices with this key
NOW = 1_767_225_600_000


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A") as world:
        yield world


def issue(world, kind, argument, *, by="alice", now_ms=NOW, device="dev-a"):
    with world.store.transaction() as tx:
        return control.issue(tx, device, kind, argument, by=by, now_ms=now_ms)


def claim(world, now_ms, instance="gw-1"):
    with world.store.transaction() as tx:
        return control.claim(tx, now_ms=now_ms, instance=instance)


def device_answer(fields, *, key=KEY, kid=b"dev-a"):
    """An answer as the device signs it: the firmware's CBOR and COSE code."""
    return cose.sign(cose.MacKey(key), cbor.dumps(fields), kid)


def deliver(world, signed, device="dev-a", now_ms=NOW + 1000):
    answer = parse_answer(verify_mac0(signed, {device: KEY}.get, topic_device=device))
    return pipeline.commit(world.store, world.rules, answers=[AnswerIn(answer, signed, now_ms)])


@pytest.mark.parametrize("kind, argument, error", [
    ("mode", 0, "mode must be a whole number 1-7"), ("mode", 8, "1-7"), ("mode", "3", "mode"), ("mode", True, "mode"),
    ("resend", 0, "resend seq"), ("config", {}, "config must be a map"),
    ("config", {"broker_host": "x"}, "cannot change at run time"), ("config", {"debounce_ms": 60001}, "0-60000"),
    ("reboot", 1, "no argument"), ("time", 5, "time"), ("format", None, "command 'format'"),
])
def test_commands_the_device_would_refuse_are_refused_here(world, kind, argument, error):
    with pytest.raises(control.ControlError, match=error):
        issue(world, kind, argument)
    assert world.store.query("SELECT count(*) FROM commands") == [(0,)]


def test_an_unknown_device_is_refused(world):
    with pytest.raises(control.ControlError, match="no device 'dev-z'"):
        issue(world, "reboot", None, device="dev-z")


def test_ids_follow_the_clock_and_never_go_back(world):
    first = issue(world, "mode", 3, now_ms=NOW)
    second = issue(world, "mode", 4, now_ms=NOW)  # the same ms
    third = issue(world, "mode", 5, now_ms=NOW - 60_000)  # the clock stepped back
    assert (first.command_id, second.command_id, third.command_id) == (NOW, NOW + 1, NOW + 2)
    assert (first.issued_by, first.state, first.argument) == ("alice", "queued", 3)


def test_a_command_is_claimed_once_and_one_nobody_sent_in_time_expires(world):
    stale = issue(world, "reboot", None, now_ms=NOW - control.QUEUE_EXPIRY_MS - 1)
    fresh = issue(world, "config", {"debounce_ms": 500}, now_ms=NOW)
    sent = claim(world, NOW + 10)
    assert [command.id for command in sent] == [fresh.id] and sent[0].state == "sent"
    assert claim(world, NOW + 20) == []
    with world.store.reading() as tx:
        assert control.get_command(tx, stale.id).state == "expired"  # never sent late
        assert control.get_command(tx, fresh.id).sent_ms == NOW + 10


def test_the_device_answer_lands_on_its_command(world):
    queued = issue(world, "config", {"debounce_ms": 500})
    claim(world, NOW)
    settings = {"debounce_ms": 500, "line_timeout_ms": 200, "gs1_form": 0, "status_interval_s": 60,
                "ack_timeout_s": 15}
    signed = device_answer({0: 1, 1: queued.command_id, 2: 4, 3: 0, 4: queued.command_id, 5: settings})
    result = deliver(world, signed)
    assert (result.answers_recorded, result.answers_unmatched) == (1, 0)
    with world.store.reading() as tx:
        answered = control.get_command(tx, queued.id)
    assert (answered.state, answered.result, answered.answer, answered.device_last_id) == (
        "answered", "applied", settings, queued.command_id)
    assert world.store.query("SELECT answer_signed FROM commands")[0][0] == signed  # the evidence, as received
    assert deliver(world, signed).answers_unmatched == 1  # the same answer again changes nothing
    with world.store.reading() as tx:
        assert control.get_command(tx, queued.id).answer_ms == NOW + 1000


def test_a_refusal_and_a_late_answer(world):
    queued = issue(world, "mode", 3)
    claim(world, NOW)
    claim(world, NOW + control.ANSWER_WAIT_MS + 1)
    with world.store.reading() as tx:
        assert control.get_command(tx, queued.id).state == "unanswered"
    deliver(world, device_answer({0: 1, 1: queued.command_id, 2: 2, 3: 2, 4: queued.command_id + 5}))
    with world.store.reading() as tx:
        late = control.get_command(tx, queued.id)
    assert (late.state, late.result, late.answer, late.device_last_id) == (
        "answered", "refused: replayed id", None, queued.command_id + 5)
    assert issue(world, "mode", 3).command_id == queued.command_id + 6  # above what the device says it took


def test_answers_are_checked_whole():
    def parsed(fields):
        signed = device_answer(fields)
        return parse_answer(verify_mac0(signed, {"dev-a": KEY}.get, topic_device="dev-a"))

    answer = parsed({0: 1, 1: 7, 2: 2, 3: 0, 4: 7, 5: 3})
    assert (answer.device, answer.command_id, answer.kind, answer.result, answer.value) == (
        "dev-a", 7, 2, Result.APPLIED, 3)
    for bad in ({0: 2, 1: 7, 2: 2, 3: 0, 4: 7}, {0: 1, 1: 7, 2: 2, 3: 9, 4: 7}, {0: 1, 1: -7, 2: 2, 3: 0, 4: 7},
                {0: 1, 1: 7, 2: 2, 3: 0}, {0: 1, 1: 7, 2: 2, 3: 0, 4: 7, 6: 1}, [1, 7, 2, 0, 7],
                {0: 1, 1: 7, 2: 2, 3: 0, 4: 7, 5: "x"}, {0: 1, 1: 7, 2: 2, 3: 0, 4: 7, 5: {"a": [1]}}):
        with pytest.raises(ProtocolError) as refused:
            parsed(bad)
        assert refused.value.reason == "answer_malformed", bad
    with pytest.raises(ProtocolError) as refused:
        verify_mac0(device_answer({0: 1}, key=bytes(range(32))), {"dev-a": KEY}.get, topic_device="dev-a")
    assert refused.value.reason == "bad_mac"
    with pytest.raises(ProtocolError) as refused:
        verify_mac0(device_answer({0: 1}, kid=b"dev-b"), {"dev-b": KEY}.get, topic_device="dev-a")
    assert refused.value.reason == "kid_mismatch"


def test_arguments_pass_as_given():
    assert check_argument(CommandType.CONFIG, {"gs1_form": 2}) == {"gs1_form": 2}
    assert check_argument(CommandType.REBOOT, None) is None
    assert check_argument(CommandType.RESEND, 2**63 - 1) == 2**63 - 1
