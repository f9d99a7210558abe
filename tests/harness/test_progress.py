"""Progress lines: each phase is said, ticks at most once per interval, all on stderr."""

from harness import progress


def test_phases_are_always_said_and_ticks_are_spaced(capsys, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    lines = progress.Progress("trace-x", every_s=5)
    lines.phase("step one")
    lines.tick("too soon")
    now[0] += 5
    lines.tick("1 of 3")
    now[0] += 1
    lines.phase("step two")
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.splitlines() == ["trace-x:     0 s  step one", "trace-x:     5 s  1 of 3",
                                        "trace-x:     6 s  step two"]
