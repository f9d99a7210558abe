"""Alert states and folding: one live alert per type and subject; open -> acknowledged -> resolved."""

import pytest
from stores import fresh_location

from gateway.domain import alerts
from gateway.store.opening import open_store


@pytest.fixture
def store(tmp_path):
    store = open_store(fresh_location(tmp_path))
    yield store
    store.close()


def test_repeats_fold_into_the_live_alert_and_keep_the_newest_evidence(store):
    with store.transaction() as tx:
        first = alerts.raise_alert(tx, "repeat_sale", subject="c1", detail="d", now_ms=1, events=[1, 2])
        for event in range(3, 80):
            assert alerts.raise_alert(tx, "repeat_sale", subject="c1", detail="d", now_ms=event,
                                      events=[event]) == first
        other = alerts.raise_alert(tx, "repeat_sale", subject="c2", detail="d", now_ms=1)
        alert = alerts.get_alert(tx, first)
    assert other != first
    assert alert.count == 78 and alert.events == list(range(30, 80)) and alert.last_ms == 79


def test_state_changes_and_their_errors(store):
    with store.transaction() as tx:
        alert_id = alerts.raise_alert(tx, "backlog_high", subject="dev", detail="d", now_ms=1)
        acknowledged = alerts.change_state(tx, alert_id, "acknowledged", note="on it", now_ms=5)
        assert (acknowledged.state, acknowledged.note, acknowledged.changed_ms) == ("acknowledged", "on it", 5)
        assert alerts.raise_alert(tx, "backlog_high", subject="dev", detail="d", now_ms=6) == alert_id
        assert alerts.change_state(tx, alert_id, "resolved", note="", now_ms=7).state == "resolved"
        with pytest.raises(alerts.AlertError, match="already resolved"):
            alerts.change_state(tx, alert_id, "acknowledged", note="", now_ms=8)
        with pytest.raises(alerts.AlertError, match="state must be"):
            alerts.change_state(tx, alert_id, "open", note="", now_ms=8)
        with pytest.raises(alerts.AlertError, match="no alert 999"):
            alerts.change_state(tx, 999, "resolved", note="", now_ms=8)
        with pytest.raises(alerts.AlertError, match="unknown alert type"):
            alerts.raise_alert(tx, "nonsense", subject="x", detail="", now_ms=1)
        again = alerts.raise_alert(tx, "backlog_high", subject="dev", detail="d", now_ms=9)
        assert again != alert_id  # after resolution the next occurrence is a new alert
        assert [a.id for a in alerts.list_alerts(tx, state="live")] == [again]
        assert alerts.open_counts(tx) == {("backlog_high", "open"): 1}
