"""The forwarding benchmark runs end to end on a small load (its figures are for docs/benchmarks.md)."""

import json

from benchmarks import forward as bench_forward


def test_the_benchmark_reports_throughputs_and_the_drain(capsys):
    assert bench_forward.main(["--events", "200", "--batch-size", "20", "--latency-ms", "5", "--outage-s", "5",
                               "--arrival-rate", "50", "--json"]) == 0
    printed = capsys.readouterr()
    figures = json.loads(printed.out)
    assert "python -m benchmarks.forward:" in printed.err and "draining the backlog" in printed.err  # progress: stderr
    assert figures["backlog"] == 250 and figures["drain_s"] > 0
    assert figures["bare_rows_per_s"] > 0 and figures["forward_rows_per_s"] > 0 and figures["faults_rows_per_s"] > 0
