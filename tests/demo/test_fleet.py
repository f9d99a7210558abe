"""The fleet simulator against a real gateway: everything it sends is acknowledged and stored once, and the
gateway's rates and alerts account exactly for the fraud it injected."""

import json

import pytest

from demo.fleet import Fleet, catalog_csv, run
from harness.gateway_process import WRITE_TOKEN


@pytest.fixture
def running(gateway):
    gateway.start()
    assert gateway.api("PUT", "/api/v1/catalog", catalog_csv().encode(), write=True)[0] == 200
    return gateway


def test_a_fleet_with_fraud_is_seen_for_what_it_is(running, broker):
    fleet = Fleet(devices=40, institutions=8, seed=3, fraud={"repeat": 0.05, "cross": 0.05, "distant": 0.04,
                                                             "mismatch": 0.05, "unscanned": 0.05})
    fleet.register(running.location)
    fleet.connect("127.0.0.1", broker.port)
    try:
        report = run(fleet, api=f"http://127.0.0.1:{running.api_port}", token=WRITE_TOKEN, seconds=6,
                     checkouts_per_min=20, offline_rate=0.05)
    finally:
        fleet.close()
    print(report)
    injected = report["injected"]
    assert report["unacknowledged"] == 0 and report["tickets"] == {201: report["checkouts"]}
    assert sum(running.count(device.name) for device in fleet.devices) == report["events"]
    assert injected.get("repeat", 0) and injected.get("mismatch", 0) and injected.get("unscanned", 0)
    rows = running.api("GET", "/api/v1/rates?scope=institution&window_h=2")[1]["rates"]
    duplicates = sum(row["duplicate_sales"] for row in rows)
    uncovered = sum(row["units_required"] - row["units_covered"] for row in rows)
    stolen = injected.get("repeat", 0) + injected.get("cross", 0) + injected.get("distant", 0)
    assert duplicates == stolen
    assert uncovered == stolen + injected.get("mismatch", 0) + injected.get("unscanned", 0)
    assert sum(row["mismatched_scans"] for row in rows) == injected["mismatch"]
    alerts = running.api("GET", "/api/v1/alerts?state=live&limit=1000")[1]["alerts"]
    kinds = {alert["type"] for alert in alerts}
    assert "repeat_sale" in kinds and "product_mismatch" in kinds
    assert ("distant_sale" in kinds) == bool(injected.get("distant"))
    assert sum(alert["count"] for alert in alerts if alert["type"] in (  # one alert per duplicate sale
        "repeat_sale", "returned_drug", "cross_institution_sale", "distant_sale")) == stolen
    assert report["verdicts"]["ok"] > 0 and report["verdicts"]["duplicate_sale"] > 0  # named in words


def test_firmware_counters_driven_by_the_pos_land_every_scan(running, broker, capsys):
    from demo import fleet

    assert fleet.main(["--broker", f"127.0.0.1:{broker.port}", "--api", f"http://127.0.0.1:{running.api_port}",
                       "--write-token", WRITE_TOKEN, "--database", running.location, "--firmware", "2",
                       "--seconds", "4", "--fraud", "repeat=0.3,unscanned=0.2"]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    assert "firmware counters started" in printed.err and "selling stopped after" in printed.err  # progress
    assert report["mode"] == "firmware" and report["devices"] == 2 and report["checkouts"] >= 2
    assert report["devices_with_backlog"] == 0 and report["events"] > 0
    scans = sum(running.count(f"fw-{number:03d}") for number in range(2))
    assert scans == report["events"]
    rows = running.api("GET", "/api/v1/rates?scope=terminal&window_h=2")[1]["rates"]
    assert {row["terminal"] for row in rows} >= {"FW000", "FW001"}
    assert sum(row["duplicate_sales"] for row in rows) == report["injected"].get("duplicate", 0)


def test_firmware_mode_refuses_a_fraud_it_cannot_make(capsys):
    from demo import fleet

    with pytest.raises(SystemExit):
        fleet.main(["--write-token", "t", "--database", "x", "--firmware", "1", "--fraud", "distant=0.1"])
    assert "none of repeat, mismatch, unscanned" in capsys.readouterr().err
