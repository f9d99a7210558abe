"""The board layer (tcagent.hal.board, rp2, esp32) on both interpreters, over small fakes of `machine`, `network`
and `ntptime` (tests/firmware/fakeboard): a Pico without radio, Wi-Fi that fails and comes back, the clock before
TLS, the scanner UART at the default pins, feedback on the GPIOs, the watchdog and a scanner that dies."""

import pytest

KEY = bytes(range(32))
SALE = "81234567890123456789"
SALE_2 = "81234567890123456780"
FLOOR_S = 1793491200  # 2026-11-01, tcagent.hal.board.FIRMWARE_DATE_S
NTP_NOW_S = 1796083200  # 2026-12-01
GREEN, RED, AMBER, BUZZER = 18, 19, 22, 21  # fwboard.PINS


@pytest.mark.parametrize("platform, radio, expect", [
    ("rp2", False, ["rp2", False]),  # a Pico: firmware without `network`
    ("rp2", True, ["rp2", True]),  # a Pico W
    ("esp32", True, ["esp32", True]),
])
def test_the_board_layer_loads_with_and_without_radio(fw, platform, radio, expect):
    assert fw.call("board_import", platform, radio) == expect


def test_a_pico_without_radio_scans_journals_and_signals(fw, tmp_path):
    state = fw.call("board_run", str(tmp_path), KEY, "rp2", False,
                    [["wait", 200], ["scan", SALE], ["wait", 400], ["scan", SALE_2], ["wait", 400], ["status"]])
    assert state["network"] is False and state["reset"] is False and state["ended"] == ""
    assert state["uart"] == [["uart", 0, 9600, 16, 17]]  # UART0 on GP16/GP17: the fake refuses pins off the table
    assert state["last_seq"] == 2 and state["signals"].count("taken") == 2 and "offline" in state["signals"]
    assert [GREEN, 1] in state["leds"] and state["leds"][-1][1] == 0  # the green LED blinked and went out
    assert 32768 in state["buzzer"] and state["buzzer"][-1] == 0
    assert state["watchdog"] == [8000] and state["feeds"] >= 10  # on by default, fed every 50 ms
    assert state["statuses"] == [True] and state["online"] is True


def test_wifi_join_errors_are_caught_and_a_lost_network_is_joined_again(fw, tmp_path):
    result = fw.call("board_wifi", str(tmp_path),
                     ["raise", "wrong_password", "no_ap", "fail", "active_raise", "ok", "ok"], [5])
    assert result["escaped"] == []
    # five failures (OSError from connect(), three failure statuses, OSError from active()), a join, the access
    # point gone (False), back (True)
    assert result["answers"] == [False, False, False, False, False, True, False, True]
    radio = result["radio"]
    assert radio.count(["got_ip"]) == 2 and radio.count(["disconnect"]) == 4  # each failed join is dropped


def test_a_pico_w_boots_joins_after_failures_sets_its_clock_and_recovers_from_a_wifi_loss(fw, tmp_path):
    state = fw.call("board_run", str(tmp_path), KEY, "rp2", True, [
        ["wifi", ["raise", "wrong_password"]], ["ntp", ["timeout", NTP_NOW_S]],
        ["scan", SALE], ["await", "got_ip", 1],  # third try: joined
        ["await", "ntp", 1],  # NTP times out: the clock goes to its floor; the broker refuses
        ["air", False], ["await", "disconnect", 2],  # the access point is gone: the next join fails
        ["air", True], ["await", "got_ip", 2], ["await", "ntp", 2],  # back: joined again, NTP answers
        ["wait", 300], ["scan", SALE_2], ["wait", 400], ["status"],
    ], {"watchdog_ms": 8000})
    assert state["reset"] is False and state["ended"] == "" and state["online"] is True
    assert state["last_seq"] == 2 and state["signals"].count("taken") == 2
    connects = [entry for entry in state["radio"] if entry[0] == "connect"]
    assert len(connects) >= 4 and connects[0] == ["connect", "Shop"]
    assert state["ntp_asked"][:2] == ["127.0.0.1", "127.0.0.1"]  # ntp_host defaults to the broker host
    assert state["rtc_years"][:2] == [2026, 2026] and state["clock"] == 1  # the floor, then NTP
    assert state["feeds"] >= 20 and state["watchdog"] == [8000]


def test_a_scanner_read_error_reopens_the_uart(fw, tmp_path):
    state = fw.call("board_run", str(tmp_path), KEY, "rp2", False, [
        ["scan", SALE], ["wait", 300], ["break_uart", "OSError"], ["wait", 1400], ["scan", SALE_2], ["wait", 400],
    ])
    assert state["reset"] is False and state["ended"] == ""
    assert len(state["uart"]) == 2 and state["last_seq"] == 2


@pytest.mark.parametrize("plan, ended", [
    ([["flash_fails"]], "scanner task ended (OSError"),  # the journal's append failed: a torn record is possible
    ([["break_uart", "ValueError"]], "scanner task ended (ValueError"),  # anything else that kills the task
])
def test_a_dead_scanner_resets_the_board_and_status_stops_saying_online(fw, tmp_path, plan, ended):
    state = fw.call("board_run", str(tmp_path), KEY, "rp2", False, [
        ["scan", SALE], ["wait", 300], ["status"], *plan, ["scan", SALE_2], ["wait", 1000],
    ])
    assert state["reset"] is True and state["ended"].startswith(ended)
    assert state["statuses"] == [True] and state["online"] is False
    assert state["last_seq"] == 1 and state["feeds_after_failure"] == 0  # the watchdog is not fed once it died


def test_the_clock_is_set_before_tls_even_without_ntp(fw, tmp_path):
    gateway_ms = 1798761600000  # 2027-01-01
    result = fw.call("board_clock", str(tmp_path), [
        ["ntp", "timeout"], ["ntp", NTP_NOW_S], ["ntp", 1600000000], ["gateway", gateway_ms]], {"tls": True})
    lost, synced, absurd, gateway = result["trace"]
    assert result["floor"] == FLOOR_S and result["asked"] == ["127.0.0.1"] * 3
    # NTP silent on a board that lost its clock: the RTC goes to the floor (certificates dated after it pass
    # TLS), events stay unsynced (clock 0, time 0)
    assert lost[0] == 0 and lost[1] == 2026 and lost[2] == 0 and FLOOR_S <= lost[3] < FLOOR_S + 5
    assert synced[0] == 1 and NTP_NOW_S <= synced[3] < NTP_NOW_S + 5 and synced[2] // 1000 >= NTP_NOW_S
    assert absurd[0] == 1 and absurd[3] >= NTP_NOW_S  # an answer before the floor is refused: no step back
    assert gateway[0] == 2 and gateway_ms // 1000 <= gateway[3] < gateway_ms // 1000 + 5  # the RTC follows


def test_the_technician_sets_the_ntp_host_and_the_floor(fw, tmp_path):
    floor_s = 1800000000
    result = fw.call("board_clock", str(tmp_path), [["ntp", "timeout"], ["ntp", NTP_NOW_S]],
                     {"ntp_host": "10.0.0.9", "clock_floor_s": floor_s})
    lost, early = result["trace"]
    assert result["asked"] == ["10.0.0.9", "10.0.0.9"]
    assert lost[0] == 0 and floor_s <= lost[3] < floor_s + 5
    assert early[0] == 0  # NTP_NOW_S is before this floor: refused
