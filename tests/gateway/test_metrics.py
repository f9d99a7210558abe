"""Prometheus conventions, checked on a real scrape with prometheus_client's own parser."""

from prometheus_client.parser import text_string_to_metric_families
from stores import fresh_location

from gateway.metrics import REJECTION_REASONS, Metrics
from gateway.store.opening import open_store


def test_the_exposition_follows_the_conventions(tmp_path):
    store = open_store(fresh_location(tmp_path))
    text = Metrics(store).render().decode()
    store.close()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = [sample for family in families.values() for sample in family.samples]
    assert not [sample.name for sample in samples if sample.name.endswith("_created")]
    for name, family in families.items():
        assert name.startswith(("tracegw_", "process_")), name  # the app's prefix, or the standard process set
        if family.type == "counter":
            assert any(sample.name == f"{name}_total" for sample in family.samples), name
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= set(families)
    build = [sample for sample in samples if sample.name == "tracegw_build_info"]
    assert len(build) == 1 and build[0].labels["version"] and build[0].value == 1
    rejected = {sample.labels["reason"]: sample.value for sample in samples
                if sample.name == "tracegw_ingest_rejected_total"}
    assert rejected == dict.fromkeys(REJECTION_REASONS, 0.0)  # every known reason there from the start
    kinds = {sample.labels["kind"] for sample in samples if sample.name == "tracegw_ingest_messages_total"}
    assert kinds == {"ev", "status", "ticket", "res", "other"}
    for sample in samples:  # an aggregation is its own metric, never a label value
        assert "stat" not in sample.labels, sample
    assert {"tracegw_device_backlog_events", "tracegw_device_backlog_events_max"} <= set(families)
