"""Measured precision and recall of the fraud alerts on a working day of realistic traffic (tests/gateway/traffic.py):
every injected case is found, and no alert lacks an injected cause. Run with -s to see the figures per kind."""

import pytest
from scenario import Scenario
from traffic import KINDS, Traffic

from gateway.rules import Rules


def _measure(world: Scenario, traffic: Traffic) -> dict[str, tuple[int, int, int]]:
    """Kind -> (injected, alerts raised, alerts with an injected cause)."""
    lines = {(terminal, number, line_no): line_id for terminal, number, line_no, line_id in world.store.query(
        "SELECT t.terminal, t.number, l.line_no, l.id FROM ticket_lines l JOIN tickets t ON t.id = l.ticket_id")}
    expected = {(kind, f"line:{lines[subject]}" if isinstance(subject, tuple) else subject)
                for kind, subject in traffic.expected}
    details = {(kind, subject): detail for kind, subject, detail in world.store.query(
        "SELECT type, subject, detail FROM alerts")}
    raised = set(details)
    for case in sorted(expected - raised):
        print("missed:", case)
    for case in sorted(raised - expected):
        print("false:", case, details[case])
    figures = {}
    for kind in sorted({kind for kind, _ in raised} | set(KINDS)):
        injected = {case for case in expected if case[0] == kind}
        alerted = {case for case in raised if case[0] == kind}
        figures[kind] = (len(injected), len(alerted), len(injected & alerted))
    return figures


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_injected_fraud_is_alerted_once_and_nothing_else_is(tmp_path, seed):
    traffic = Traffic(seed)
    world = Scenario(tmp_path, Rules())
    try:
        traffic.play(world)
        figures = _measure(world, traffic)
        checked_lines = world.store.query("SELECT count(*) FROM ticket_lines WHERE checked = 0")
        scans = world.store.query("SELECT count(*) FROM events WHERE op IN (1, 6)")[0][0]
    finally:
        world.close()
    print(f"\nseed {seed}: {traffic.checkouts} checkouts, {scans} sale scans")
    print(f"{'kind':24} {'injected':>8} {'alerts':>6} {'recall':>6} {'precision':>9}")
    for kind, (injected, alerted, true) in figures.items():
        recall = f"{true / injected:.2f}" if injected else "-"
        precision = f"{true / alerted:.2f}" if alerted else "-"
        print(f"{kind:24} {injected:8} {alerted:6} {recall:>6} {precision:>9}")
    assert checked_lines == [(0,)]
    assert all(figures[kind][0] >= 2 for kind in KINDS), figures  # the day injected every kind
    assert {kind: (true, alerted) for kind, (injected, alerted, true) in figures.items()} == {
        kind: (injected, injected) for kind, (injected, _, _) in figures.items()}
