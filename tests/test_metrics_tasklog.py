"""The exec service's task log: a bounded stream of finished runs and a rate
read without a timer, on the clock it is given."""

from __future__ import annotations

from mesh.ops._tasklog import RECENT, WINDOW, TaskLog


def test_durations_run_from_hand_off_to_outcome() -> None:
    log = TaskLog()
    log.started(["a", "b"], 10.0)
    log.finished([("a", 0, b""), ("b", 2, b"")], 10.25)
    assert [(e[1], e[2], e[4]) for e in log.recent] == [("a", "ok", 0.25), ("b", "error", 0.25)]
    assert log.finished_total == 2


def test_the_stream_is_bounded_and_read_by_sequence_number() -> None:
    log = TaskLog()
    for i in range(RECENT + 50):
        log.started([f"k{i}"], float(i))
        log.finished([(f"k{i}", 0, b"")], float(i))
    assert len(log.recent) == RECENT
    assert log.since(RECENT + 45, 100) == [
        [seq, f"k{seq - 1}", "ok", float(seq - 1), 0.0] for seq in range(RECENT + 46, RECENT + 51)]
    newest = log.since(0, 3)
    assert [e[0] for e in newest] == [RECENT + 48, RECENT + 49, RECENT + 50]


def test_the_rate_counts_the_last_window_and_decays_to_zero() -> None:
    log = TaskLog()
    for second in range(WINDOW):
        log.finished([(f"k{second}-{i}", 0, b"") for i in range(5)], 100.0 + second + 0.5)
    assert log.rate(100.0 + WINDOW - 0.5) == 5.0
    assert log.rate(100.0 + WINDOW + 3.5) == 5.0 * (WINDOW - 4) / WINDOW
    assert log.rate(100.0 + 3 * WINDOW) == 0.0
