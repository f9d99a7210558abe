"""Offline analysis: JSONL exports replayed into a fresh store, rates and alerts as JSON, bad lines reported."""

import json
import subprocess
import sys

import pytest
from scenario import CATALOG, at, code

from gateway.domain.replay import ReplayError, replay_folder
from gateway.rules import Rules


def _write(folder, name, rows):
    (folder / name).write_text("".join(json.dumps(row) + "\n" if not isinstance(row, str) else row + "\n"
                                       for row in rows))


@pytest.fixture
def exports(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "catalog.csv").write_text(CATALOG)
    _write(folder, "devices.jsonl", [{"device": "h-1", "terminal": "H1", "institution": "H-1",
                                      "institution_type": "hospital", "region": "440300"}])
    _write(folder, "events.jsonl", [
        {"time": at(9), "terminal": "A1", "institution": "P-A", "code": code(1), "ticket": "T1"},
        {"time": at(9, 1), "terminal": "A1", "institution": "P-A", "code": code(2), "ticket": "T1"},
        {"time": "2026-11-22T08:00:00", "device": "h-1", "terminal": "H1", "code": code(3), "op": "dispense"},
        {"time": at(10), "terminal": "A1", "institution": "P-A", "code": code(3)},
        {"time": at(10, 1), "terminal": "A1", "institution": "P-A", "code": "6901234567892"},
        "{broken",
        {"time": at(10, 2), "terminal": "Z1", "code": code(9)},
        {"time": at(10, 3), "terminal": "A1", "institution": "P-A", "code": code(10), "op": "teleport"},
    ])
    _write(folder, "inbound.jsonl", [{"time": at(7), "terminal": "A1", "institution": "P-A", "code": code(1)}])
    _write(folder, "tickets.jsonl", [
        {"number": "T1", "terminal": "A1", "time": at(8, 59), "lines": [{"list_code": "XA01", "quantity": 2}]},
        {"number": "T2", "terminal": "A1", "time": at(11), "lines": [{"list_code": "XA01", "quantity": 1}]},
    ])
    return folder


def test_replay_reports_rates_alerts_and_rejected_lines(exports):
    report = replay_folder(exports, Rules())
    assert report["records"] == {"events": 6, "tickets": 2, "products": 4, "devices": 2, "rejected": 3}
    [a1] = [row for row in report["rates"]["terminal"] if row["terminal"] == "A1"]
    assert (a1["units_required"], a1["units_covered"], a1["scans"], a1["valid_scans"]) == (3, 2, 5, 4)
    types = sorted(alert["type"] for alert in report["alerts"])
    assert types == ["returned_drug", "sales_above_purchases", "unscanned_sale"]
    wheres = [item["where"] for item in report["rejected"]]
    assert wheres == ["events.jsonl:6", "events.jsonl:7", "events.jsonl:8"]
    assert "institution" in report["rejected"][1]["error"] and "teleport" in report["rejected"][2]["error"]


def test_the_command_prints_json_and_refuses_an_empty_folder(exports, tmp_path):
    done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "replay", str(exports)], capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout)["records"]["events"] == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReplayError, match="no events.jsonl"):
        replay_folder(tmp_path / "empty", Rules())
    failed = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "replay", str(tmp_path / "nowhere")],
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "is not a folder" in failed.stderr
