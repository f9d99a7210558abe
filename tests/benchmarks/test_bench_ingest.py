"""The ingest benchmark runs end to end on small streams, on both stores, with its plot (its figures are for
docs/benchmarks.md, not asserted)."""

import json

from benchmarks import ingest as bench_ingest


def test_the_benchmark_reports_rates_ratios_latencies_and_draws_its_plot(capsys, tmp_path):
    plot = tmp_path / "ingest.png"
    assert bench_ingest.main(["--events", "300", "--devices", "5", "--stores", "sqlite,postgresql",
                              "--loads", "50,100", "--load-seconds", "1", "--plot", str(plot), "--json"]) == 0
    printed = capsys.readouterr()
    figures = json.loads(printed.out)
    assert "postgresql, backlog, 2 gateway instance(s)" in printed.err  # progress on stderr, one line per phase
    assert figures["cores"] >= 1 and figures["events"] == 300 and figures["bare_paho_msgs_per_s"] > 0
    assert figures["bare_paho_backlog_msgs_per_s"] > 0
    runs = {(run["store"], run["mode"], run["instances"], run["offered"]): run for run in figures["runs"]}
    setups = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2))
    saturated = {(store, mode, instances, 0) for store, instances in setups for mode in ("live", "backlog")}
    assert set(runs) == saturated | {(store, "live", 1, load) for store in ("sqlite", "postgresql")
                                     for load in (50, 100)}
    assert all(run["acked_per_s"] > 0 for run in runs.values())
    assert all(0 < run["p50_ms"] <= run["p99_ms"] for run in runs.values() if run["offered"])
    assert plot.read_bytes().startswith(b"\x89PNG")
