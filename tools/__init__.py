"""Technician and operator tools: decoding scans, benchmarks, the demo."""
