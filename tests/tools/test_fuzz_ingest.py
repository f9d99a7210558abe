"""The fuzz harness in CI: a few thousand hostile messages through Admission on a real store, 0 escapes; and
that it would see one."""

import logging

import pytest

from gateway.store.sqlite import SQLiteStore
from tools import fuzz_ingest
from tools.fuzz_ingest import Harness, fuzz


@pytest.fixture
def harness(tmp_path):
    logging.getLogger("gateway").setLevel(logging.CRITICAL)
    store = SQLiteStore(tmp_path / "fuzz.sqlite3", durable=False)
    yield Harness(store, quarantine_rows=500)
    store.close()
    logging.getLogger("gateway").setLevel(logging.NOTSET)


def test_hostile_messages_through_admission_escape_nothing_and_the_good_device_is_served(harness):
    tally = fuzz(harness, 5000, seed=20261129)
    assert tally.escapes == []
    assert tally.good_stored == tally.batches and tally.messages == 5000 + tally.batches
    assert tally.passed["event"] > tally.batches  # hostile events reached the schema, the window and the commit
    commit_refusals = {key for key in harness.admission.counts if key.startswith("rejected_")}
    assert {"rejected_malformed_cbor", "rejected_not_mac0", "rejected_schema", "rejected_bad_mac",
            "rejected_seq_out_of_window", "rejected_status_malformed", "rejected_ticket_invalid",
            "rejected_answer_malformed"} <= commit_refusals
    assert tally.passed["answer"] > 0  # well-formed hostile answers reached the commit (and matched no command)
    assert harness.admission.counts["answers_unmatched"] == tally.passed["answer"]
    rows = harness.store.query("SELECT count(*) FROM quarantine")[0][0]
    assert rows <= 500  # bounded; what went is counted
    assert harness.store.query("SELECT sum(messages) FROM quarantine_dropped")[0][0] > 0


def test_the_harness_counts_an_escape(harness, monkeypatch):
    def crash(batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.admission, "sort", crash)
    harness.run([(f"tc/v1/{fuzz_ingest.HOSTILE_DEVICE}/ev", b"\x00")])
    assert len(harness.tally.escapes) == 1 and "RuntimeError: boom" in harness.tally.escapes[0]


def test_the_soak_command_prints_its_figures(capsys):
    assert fuzz_ingest.main(["--messages", "400", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "cores: " in out and "escapes: 0" in out and "refusals by reason" in out
