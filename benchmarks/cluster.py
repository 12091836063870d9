"""The lab on a cluster (lesson 09), its failure modes side by side: one run, one cluster of its own.

1. a primary SIGKILLed while claims are submitted through the gateway: how long until its replica is
   promoted, until a client's write to its slots succeeds again (kill -> first successful write), how many
   requests failed meanwhile and after, and whether every committed claim has exactly one event;
2. the same primary's replica frozen and cut off, then the primary killed: events lost without the outbox's
   WAIT safeguard (``outbox_replica_acks=0``) and with it;
3. a live reshard to a new, fourth primary under traffic: MOVED/ASK redirects the nodes answered, failed
   requests.

Target (issue 15): no committed claim without its event with the safeguard, no request failing once the
replica is promoted or while slots move. Run: ``python -m benchmarks.cluster`` (about two minutes; it starts
and stops its own 6-node cluster lab, your lab is not touched).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from labkit.experiments import cluster as lesson
from labkit.seed import seed
from labkit.tables import text_table

TARGETS = {"lost_with_safeguard": ("<=", 0), "failed_after_promotion": ("<=", 0),
           "failed_during_reshard": ("<=", 0)}
QUICK_ARGV: list[str] = []


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=20, help="claims per second during the failover")
    parser.add_argument("--claims", type=int, default=8, help="claims written while the replica lags, per run")
    parser.add_argument("--slots", type=int, default=40, help="slots moved from each primary to the new one")
    args = parser.parse_args(argv)

    lab = lesson.start_cluster_lab(Path(tempfile.mkdtemp(prefix="bench-cluster-")))
    try:
        seed(lab.settings, customers=20, policies=40, claims=10)
        lesson.use_the_lab(lab)

        requests, events = lesson.kill_primary_under_claims(lab, rate=args.rate)
        failover = lesson.failover_summary(requests, events, lesson.failover_audit(lab, requests))
        lesson.bring_back(lab, next(n for n in lesson.nodes(lab) if n.port == requests.attrs["victim"]))

        runs = []
        for safeguard in (False, True):
            run = lesson.events_lost_in_a_failover(lab, safeguard=safeguard, claims=args.claims)
            lesson.bring_back(lab, run["killed"])
            runs.append(run)
        losses = lesson.loss_table(runs)

        reshard = lesson.reshard_summary(lesson.reshard_under_traffic(lab, slots_per_primary=args.slots))
    finally:
        lab.stop()

    print("\n1. a primary SIGKILLed under claim traffic")
    print(lesson.failover_verdict(failover))
    print("\n2. events lost per failover (the replica frozen and cut off first)")
    print(text_table(losses.reset_index().to_dict("records")))
    print(lesson.loss_verdict(losses))
    print("\n3. a live reshard to a fourth primary")
    print(lesson.reshard_verdict(reshard))
    without, with_ = losses.iloc[0], losses.iloc[1]
    return {"promotion_s": round(failover["promotion_s"], 2),
            "kill_to_first_write_s": round(failover["first_write_s"], 2),
            "failed_during_failover": failover["failed_during"], "failed_after_promotion": failover["failed_after"],
            "claims_lost_or_doubled": failover["lost"] + failover["doubled"],
            "lost_without_safeguard": int(without["lost"]), "lost_with_safeguard": int(with_["lost"]),
            "moved_redirects": reshard["moved_redirects"], "ask_redirects": reshard["ask_redirects"],
            "failed_during_reshard": reshard["failed"]}


if __name__ == "__main__":
    from .harness import print_figures

    print_figures(main(), TARGETS)
