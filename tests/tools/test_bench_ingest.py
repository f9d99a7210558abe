"""The ingest benchmark runs end to end on a small stream (its figures are for docs/benchmarks.md, not asserted)."""

import json

from tools import bench_ingest


def test_the_benchmark_reports_both_rates_and_the_latency(capsys):
    assert bench_ingest.main(["--events", "300", "--devices", "5", "--latency-events", "60", "--latency-rate", "100",
                              "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["cores"] >= 1 and figures["events"] == 300
    assert figures["bare_paho_msgs_per_s"] > 0 and figures["gateway_acked_events_per_s"] > 0
    assert 0 < figures["ack_latency_p50_ms"] <= figures["ack_latency_p99_ms"]
