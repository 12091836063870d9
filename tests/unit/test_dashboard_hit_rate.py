"""The dashboard's hit-rate line: per-tick deltas of each instance's counters, over the last minute."""

from labkit.dashboard.collect import HISTORY_S, HitRateHistory


def test_first_sight_of_an_instance_is_a_baseline_not_reads():
    history = HitRateHistory()
    history.add({"policy-1": (900, 100)})  # counters since the instance started, long before the page opened
    assert history.describe() == {"hit_rate_1m": None, "reads_1m": 0, "line": [None]}


def test_reads_between_ticks_make_the_line_and_the_minutes_rate():
    history = HitRateHistory()
    history.add({"a": (0, 0), "b": (10, 10)})
    history.add({"a": (3, 1), "b": (10, 10)})  # a: 3 hits, 1 miss
    history.add({"a": (3, 1), "b": (14, 14)})  # b: 4 hits, 4 misses
    described = history.describe()
    assert described["line"] == [None, 0.75, 0.5]
    assert described["reads_1m"] == 12 and described["hit_rate_1m"] == round(7 / 12, 4)


def test_a_restarted_instance_counts_from_zero_again():
    history = HitRateHistory()
    history.add({"a": (500, 50)})
    history.add({"a": (2, 0)})  # restarted: counters fell; its 2 hits are this tick's reads
    assert history.describe()["line"] == [None, 1.0]


def test_the_line_keeps_only_the_last_minute():
    history = HitRateHistory()
    for tick in range(HISTORY_S + 30):
        history.add({"a": (tick, 0)})
    assert len(history.describe()["line"]) == HISTORY_S
