"""The ingest fuzzer in CI: a few thousand hostile messages through Admission on a real store, 0 escapes; and
that it would see one."""

import logging

import pytest

from gateway.store.sqlite import SQLiteStore
from soaks import fuzz_ingest
from soaks.fuzz_ingest import AdmissionFuzzer, fuzz


@pytest.fixture
def fuzzer(tmp_path):
    logging.getLogger("gateway").setLevel(logging.CRITICAL)
    store = SQLiteStore(tmp_path / "fuzz.sqlite3", durable=False)
    yield AdmissionFuzzer(store, quarantine_rows=500)
    store.close()
    logging.getLogger("gateway").setLevel(logging.NOTSET)


def test_hostile_messages_through_admission_escape_nothing_and_the_good_device_is_served(fuzzer):
    counts = fuzz(fuzzer, 5000, seed=20261129)
    assert counts.escapes == []
    assert counts.good_stored == counts.batches and counts.messages == 5000 + counts.batches
    assert counts.passed["event"] > counts.batches  # hostile events reached the schema, the window and the commit
    commit_refusals = {key for key in fuzzer.admission.counts if key.startswith("rejected_")}
    assert {"rejected_malformed_cbor", "rejected_not_mac0", "rejected_schema", "rejected_bad_mac",
            "rejected_seq_out_of_window", "rejected_status_malformed", "rejected_ticket_invalid",
            "rejected_answer_malformed"} <= commit_refusals
    assert counts.passed["answer"] > 0  # well-formed hostile answers reached the commit (and matched no command)
    assert fuzzer.admission.counts["answers_unmatched"] == counts.passed["answer"]
    rows = fuzzer.store.query("SELECT count(*) FROM quarantine")[0][0]
    assert rows <= 500  # bounded; what went is counted
    assert fuzzer.store.query("SELECT sum(messages) FROM quarantine_dropped")[0][0] > 0


def test_the_fuzzer_counts_an_escape(fuzzer, monkeypatch):
    def crash(batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(fuzzer.admission, "sort", crash)
    fuzzer.run([(f"tc/v1/{fuzz_ingest.HOSTILE_DEVICE}/ev", b"\x00")])
    assert len(fuzzer.counts.escapes) == 1 and "RuntimeError: boom" in fuzzer.counts.escapes[0]


def test_the_soak_command_prints_its_figures(capsys):
    assert fuzz_ingest.main(["--messages", "400", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "cores: " in out and "escapes: 0" in out and "refusals by reason" in out
