"""Hostile input on the device, on both interpreters: acks, commands and scanner lines of any shape are counted
and dropped, the MQTT reader lives on, and the next good message is applied at once."""

import cbor2

from tcagent.codec import cose

KEY = bytes(range(32))
SCANS = 30  # spread over several journal segments, so an ack trims
GOOD_ACK = cbor2.dumps({0: 1, 1: SCANS})
TIME = 1767225600000


def deep(levels):
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


HOSTILE_ACKS = {
    "array": cbor2.dumps([0, 1, SCANS]),
    "array2": cbor2.dumps([1, SCANS]),
    "text": cbor2.dumps("ack"),
    "int": cbor2.dumps(SCANS),
    "null": cbor2.dumps(None),
    "empty_map": cbor2.dumps({}),
    "no_seq": cbor2.dumps({0: 1}),
    "no_version": cbor2.dumps({1: SCANS}),
    "version_2": cbor2.dumps({0: 2, 1: SCANS}),
    "version_true": cbor2.dumps({0: True, 1: SCANS}),
    "seq_text": cbor2.dumps({0: 1, 1: str(SCANS)}),
    "seq_negative": cbor2.dumps({0: 1, 1: -1}),
    "seq_float": cbor2.dumps({0: 1, 1: float(SCANS)}),
    "seq_bignum": cbor2.dumps({0: 1, 1: 2**64}),
    "seq_huge_negative": cbor2.dumps({0: 1, 1: -(2**64)}),
    "seq_true": cbor2.dumps({0: 1, 1: True}),
    "seq_null": cbor2.dumps({0: 1, 1: None}),
    "seq_list": cbor2.dumps({0: 1, 1: [SCANS]}),
    "seq_tagged": cbor2.dumps({0: 1, 1: cbor2.CBORTag(1, SCANS)}),
    "verdicts_text": cbor2.dumps({0: 1, 1: SCANS, 2: "x"}),
    "verdicts_map": cbor2.dumps({0: 1, 1: SCANS, 2: {1: 0}}),
    "verdicts_flat": cbor2.dumps({0: 1, 1: SCANS, 2: [1, 2]}),
    "verdict_short": cbor2.dumps({0: 1, 1: SCANS, 2: [[1]]}),
    "verdict_long": cbor2.dumps({0: 1, 1: SCANS, 2: [[1, 0, 0]]}),
    "verdict_text": cbor2.dumps({0: 1, 1: SCANS, 2: [["a", 0]]}),
    "verdict_negative": cbor2.dumps({0: 1, 1: SCANS, 2: [[SCANS, -1]]}),
    "verdict_bignum": cbor2.dumps({0: 1, 1: SCANS, 2: [[SCANS, 2**70]]}),
    "verdict_nested": cbor2.dumps({0: 1, 1: SCANS, 2: [[SCANS, deep(3)]]}),
    "deep_nesting": cbor2.dumps(deep(40)),
    "list_key": b"\xa1\x80\x01",  # {[]: 1}
    "map_key": b"\xa2\x00\x01\xa0\x01",  # {0: 1, {}: 1}
    "truncated": GOOD_ACK[:-1],
    "truncated_head": b"\xa2\x00",
    "huge_bstr_claim": b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",
    "huge_array_claim": b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00",
    "indefinite": b"\xbf\x00\x01\x01\x18\x1e\xff",
    "trailing": GOOD_ACK + b"\x00",
    "empty": b"",
    "break": b"\xff",
    "not_cbor": b"hello, device",
    "undefined": b"\xf7",
}


def feed(fw, folder, messages, scans=SCANS, **kwargs):
    return fw.call("agent_feed", str(folder), KEY, scans, [list(message) for message in messages], **kwargs)


def test_every_hostile_ack_is_counted_and_the_next_good_ack_trims(fw, tmp_path):
    wrong = {}
    for name, payload in sorted(HOSTILE_ACKS.items()):
        state = feed(fw, tmp_path / name, [("ack", payload), ("ack", GOOD_ACK)])
        if state["escaped"] or state["counts"]["bad_messages"] != 1 or state["acked_seq"] != SCANS or \
                state["first_segment"] == 1:
            wrong[name] = (state["escaped"], state["counts"]["bad_messages"], state["acked_seq"])
    assert wrong == {}


def test_a_refused_ack_applies_nothing(fw, tmp_path):
    """An ack is checked whole before it trims: a good seq with junk verdicts trims nothing."""
    hostile = [("ack", data) for name, data in sorted(HOSTILE_ACKS.items()) if name.startswith("verdict")]
    state = feed(fw, tmp_path, hostile)
    assert state["escaped"] == [] and state["counts"]["bad_messages"] == len(hostile)
    assert state["acked_seq"] == 0 and state["trimmed_seq"] == 0


def test_unknown_ack_key_is_ignored_and_odd_topics_are_counted(fw, tmp_path):
    state = feed(fw, tmp_path, [("ack", cbor2.dumps({0: 1, 1: SCANS, 7: ["future"]})),
                                ("tc/v1/dev-0001/other", GOOD_ACK), ("tc/v1/dev-0002/ack", GOOD_ACK)])
    assert state["escaped"] == [] and state["acked_seq"] == SCANS
    assert state["counts"]["bad_messages"] == 2


def test_array_ack_leaves_the_mqtt_reader_running_and_the_next_ack_is_handled_at_once(fw, tmp_path):
    state = fw.call("agent_reader", str(tmp_path), KEY, SCANS, [HOSTILE_ACKS["array"], GOOD_ACK])
    assert state["reader_running"], state["reader_ended"]
    assert state["connected"] and state["pubacks"] == [1, 2]
    assert state["counts"]["bad_messages"] == 1
    assert state["acked_seq"] == SCANS and state["first_segment"] > 1


def test_every_hostile_ack_through_the_mqtt_reader(fw, tmp_path):
    hostile = [HOSTILE_ACKS[name] for name in sorted(HOSTILE_ACKS)]
    state = fw.call("agent_reader", str(tmp_path), KEY, SCANS, [*hostile, GOOD_ACK])
    assert state["reader_running"], state["reader_ended"]
    assert state["pubacks"] == list(range(1, len(hostile) + 2))
    assert state["counts"]["bad_messages"] == len(hostile)
    assert state["acked_seq"] == SCANS and state["first_segment"] > 1


def signed(payload, key=KEY):
    return cose.sign(cose.MacKey(key), cbor2.dumps(payload), b"gateway")


def command(command_id, kind, argument, **extra):
    payload = {0: 1, 1: command_id, 2: kind, 3: TIME, 4: argument}
    payload.update(extra)
    return payload


HOSTILE_COMMANDS = {
    "array": signed([1, 1000, 2, TIME, 3]),
    "text": signed("mode 3"),
    "int": signed(1000),
    "null": signed(None),
    "no_type": signed({0: 1, 1: 1000, 3: TIME, 4: 3}),
    "no_issued": signed({0: 1, 1: 1000, 2: 2, 4: 3}),
    "version_2": signed({**command(1000, 2, 3), 0: 2}),
    "id_text": signed(command("1000", 2, 3)),
    "id_negative": signed(command(-5, 2, 3)),
    "id_bignum": signed(command(2**64, 2, 3)),
    "id_true": signed(command(True, 2, 3)),
    "id_float": signed(command(1000.0, 2, 3)),
    "type_unknown": signed(command(1000, 99, None)),
    "type_text": signed(command(1000, "mode", 3)),
    "mode_0": signed(command(1000, 2, 0)),
    "mode_8": signed(command(1000, 2, 8)),
    "mode_text": signed(command(1000, 2, "3")),
    "mode_true": signed(command(1000, 2, True)),
    "time_text": signed(command(1000, 1, "now")),
    "time_zero": signed(command(1000, 1, 0)),
    "time_huge": signed(command(1000, 1, 2**63)),
    "time_negative": signed(command(1000, 1, -1)),
    "time_float": signed(command(1000, 1, 1767225600000.5)),
    "resend_0": signed(command(1000, 3, 0)),
    "resend_text": signed(command(1000, 3, "1")),
    "config_int": signed(command(1000, 4, 5)),
    "config_negative": signed(command(1000, 4, {"debounce_ms": -1})),
    "config_unknown": signed(command(1000, 4, {"broker_host": 1})),
    "config_key_int": signed(command(1000, 4, {1: 2})),
    "config_huge": signed(command(1000, 4, {"status_interval_s": 2**64 - 1})),
    "config_zero_timeout": signed(command(1000, 4, {"ack_timeout_s": 0})),
    "config_gs1_form": signed(command(1000, 4, {"gs1_form": 3})),
    "config_nested": signed(command(1000, 4, {"debounce_ms": deep(3)})),
    "config_half_good": signed(command(1000, 4, {"debounce_ms": 10, "line_timeout_ms": "x"})),
    "reboot_argument": signed(command(1000, 5, 1)),
    "extra_key": signed(command(1000, 2, 3, **{"5": 1})),
    "extra_int_key": signed({**command(1000, 2, 3), 9: 1}),
    "deep_nesting": signed(deep(40)),
    "bad_mac": signed(command(1000, 2, 3), key=bytes(32)),
    "truncated": signed(command(1000, 2, 3))[:-1],
    "not_cose": cbor2.dumps(command(1000, 2, 3)),
    "empty": b"",
    "not_cbor": b"\xff\x00garbage",
}


def test_every_hostile_command_is_counted_not_applied_and_burns_no_id(fw, tmp_path):
    defaults = {"debounce_ms": 1500, "line_timeout_ms": 200, "gs1_form": 0, "status_interval_s": 60,
                "ack_timeout_s": 15}
    wrong = {}
    for name, message in sorted(HOSTILE_COMMANDS.items()):
        state = feed(fw, tmp_path / name, [("cmd", message), ("cmd", signed(command(6, 2, 4)))], scans=0)
        counts = state["counts"]
        if state["escaped"] or counts["bad_messages"] != 1 or counts["commands_rejected"] != 1 or \
                state["rebooted"] or state["clock"] != 1 or state["config"] != defaults or \
                state["mode"] != 4 or state["last_command_id"] != 6:  # the good command after it still applies
            wrong[name] = state
    assert wrong == {}


def answers(state):
    """The device's queued answers, each MAC-checked with the device's key and kid, as decoded maps."""
    found = []
    for message in state["answers"]:
        mac0 = cose.parse(bytes(message))
        assert mac0.kid == b"dev-0001"
        found.append(cbor2.loads(cose.verify(cose.MacKey(KEY), mac0)))
    return found


def test_good_commands_apply_and_are_answered(fw, tmp_path):
    state = feed(fw, tmp_path, [("cmd", signed(command(5, 1, TIME + 5000))),
                                ("cmd", signed(command(6, 4, {"debounce_ms": 10, "ack_timeout_s": 3}))),
                                ("cmd", signed(command(7, 3, 2**40))),
                                ("cmd", signed(command(8, 5, None)))], scans=3)
    assert state["escaped"] == [] and state["counts"]["bad_messages"] == 0
    assert state["clock"] == 2 and state["time_ms"] == TIME + 5000
    assert state["config"]["debounce_ms"] == 10 and state["config"]["ack_timeout_s"] == 3
    assert state["resend_from"] == 4  # past the journal's end: resend what there is, nothing beyond
    assert state["last_command_id"] == 8
    assert state["reboot_pending"] and not state["rebooted"]  # the reboot waits for its answer to go out
    settings = {"debounce_ms": 10, "line_timeout_ms": 200, "gs1_form": 0, "status_interval_s": 60, "ack_timeout_s": 3}
    assert answers(state) == [{0: 1, 1: 5, 2: 1, 3: 0, 4: 5, 5: TIME + 5000},
                              {0: 1, 1: 6, 2: 4, 3: 0, 4: 6, 5: settings},
                              {0: 1, 1: 7, 2: 3, 3: 0, 4: 7, 5: 4}, {0: 1, 1: 8, 2: 5, 3: 0, 4: 8}]


def test_refused_commands_are_answered_with_the_reason_and_the_answers_are_bounded(fw, tmp_path):
    state = feed(fw, tmp_path, [("cmd", signed(command(9, 2, 3))), ("cmd", signed(command(9, 2, 5))),
                                ("cmd", signed(command(10, 2, 8))), ("cmd", signed(command("x", 2, 3))),
                                ("cmd", signed(command(11, 2, 3), key=bytes(32))),
                                ("cmd", signed(command(12, 2, 4))), ("cmd", signed(command(13, 2, 5)))], scans=0)
    assert state["escaped"] == [] and state["mode"] == 5 and state["last_command_id"] == 13
    assert [(found[1], found[2], found[3], found[4]) for found in answers(state)] == [
        (9, 2, 0, 9),  # applied
        (9, 2, 2, 9),  # replayed id
        (10, 2, 1, 9),  # mode 8 is out of range (7 is ADJUST)
        (0, 2, 1, 9),  # an id that is not a number: answered with id 0; the bad MAC gets no answer at all
    ]
    assert state["counts"]["answers_dropped"] == 2  # 12 and 13 found four answers waiting (no link here)


# a valid GS1 line within the 512-byte line limit whose event would pass the 1,024-byte payload limit
LONG_GS1 = b"]d20106901234567892" + b"21" + b"A" * 20 + b"\x1d10" + b"B" * 20 + b"\x1d" + b"\x1d".join(
    [str(ai).encode() + b"Y" * 90 for ai in range(91, 95)] + [b"95" + b"Y" * 70])


def test_scan_too_big_for_an_event_is_refused_and_intake_goes_on(fw, tmp_path):
    state = fw.call("agent_lines", str(tmp_path), KEY, [b"TC:TKT:" + b"T" * 40, b"TC:QTY:9999", LONG_GS1,
                                                         b"81234567890123456789"])
    assert state["escaped"] == []
    assert state["counts"]["intake_errors"] == 1 and state["counts"]["scans"] == 1 and state["last_seq"] == 1
    assert "error scan not taken" in state["signals"] and "taken seq=1" in state["signals"]
