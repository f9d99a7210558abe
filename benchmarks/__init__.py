"""Benchmarks, each measuring its baseline in the same run: `python -m benchmarks.NAME` from a checkout
(docs/benchmarks.md). Not in the wheel."""
