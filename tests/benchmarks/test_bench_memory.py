"""The memory benchmark runs end to end on a small stream and reports one RSS reading per round."""

import json

from benchmarks import memory as bench_memory


def test_the_benchmark_reads_the_gateway_rss_after_every_round(capsys):
    assert bench_memory.main(["--events", "1200", "--round", "400", "--devices", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [count for count, _ in figures["rss_mib"]] == [400, 800, 1200]
    assert all(rss > 5 for _, rss in figures["rss_mib"]) and figures["ratio"] > 0
