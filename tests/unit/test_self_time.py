"""Self time (lesson 10, ``labkit.traces.self_ms``): a span's duration minus what its direct children cover,
each child clipped to its parent and overlapping children counted once — on a recorded trace and on small
traces made to show each case."""

from __future__ import annotations

import pandas as pd
import pytest

from labkit import traces


def crafted(*spans) -> pd.DataFrame:
    return pd.DataFrame([{"span_id": s, "parent_id": p, "service": svc, "start_ms": float(t), "duration_ms": float(d)}
                         for s, p, svc, t, d in spans])


def test_a_parent_keeps_only_the_time_its_children_do_not_cover():
    df = crafted(("a", None, "gateway", 0, 100), ("b", "a", "policy", 5, 90), ("c", "b", "policy", 10, 20))
    assert list(traces.self_ms(df)) == pytest.approx([10, 70, 20])


def test_children_running_at_once_are_subtracted_once():
    df = crafted(("a", None, "customer", 0, 50), ("b", "a", "policy", 10, 30), ("c", "a", "claims", 15, 30))
    assert traces.self_ms(df).iloc[0] == pytest.approx(15)


def test_a_child_outside_its_parent_is_clipped_to_it():
    df = crafted(("a", None, "claims", 0, 20), ("b", "a", "worker", 15, 25), ("c", "a", "worker", 30, 5))
    assert list(traces.self_ms(df)) == pytest.approx([15, 25, 5])


def test_the_recorded_trace_names_the_slowed_service():
    df = traces.recorded("claim_with_slow_policy")
    table = traces.self_time_by_service(df)
    assert table.index[0] == "policy" and table.loc["policy", "self_ms"] > 150  # it answered 150 ms late
    assert df["service"].value_counts().index[0] != "policy"  # the most spans are elsewhere
    assert table["self_ms"].sum() == pytest.approx(traces.self_ms(df).sum())
    assert (traces.self_ms(df) >= -1e-9).all()
