"""Lesson 09's verdict on the WAIT safeguard says what the run showed — and never calls an event still on its
way lost (a busy machine once printed "8 lost with the safeguard" because the audit looked too early)."""

from __future__ import annotations

from labkit.experiments.cluster import loss_table, loss_verdict


def run(safeguard: bool, committed=8, exactly_one=8, lost=0, doubled=0, still_unsent=0) -> dict:
    name = "WAIT 1 (outbox_replica_acks=1)" if safeguard else "none (outbox_replica_acks=0)"
    return {"safeguard": name, "committed": committed, "exactly_one": exactly_one, "lost": lost, "doubled": doubled,
            "promotion_s": 2.4, "relay_done_s": 3.8, "still_unsent": still_unsent, "killed": None}


def test_the_expected_outcome_is_said_only_when_the_numbers_show_it():
    said = loss_verdict(loss_table([run(False, exactly_one=0, lost=8), run(True)]))
    assert "as the lesson expects" in said and "8 lost" in said
    for wrong in ([run(False, exactly_one=0, lost=8), run(True, exactly_one=6, lost=2)],      # lost with WAIT
                  [run(False, exactly_one=0, lost=8), run(True, exactly_one=7, doubled=1)],   # doubled with WAIT
                  [run(False), run(True)]):                                                   # nothing lost without
        assert "as the lesson expects" not in loss_verdict(loss_table(wrong))


def test_events_the_relay_still_owes_are_not_called_lost():
    said = loss_verdict(loss_table([run(False, exactly_one=0, lost=8),
                                    run(True, exactly_one=0, lost=8, still_unsent=8)]))
    assert "still on their way" in said and "could not tell" in said
    assert "NOT what the lesson expects" not in said and "as the lesson expects" not in said
