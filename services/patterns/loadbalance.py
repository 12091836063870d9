"""Load balancing: which instance gets the next request.

Four strategies, each a small class with one method, ``pick(candidates)``, so a notebook can put them side
by side. ``candidates`` are the healthy instances, each with ``instance_id``, ``outstanding`` (requests sent
to it and not answered yet) and ``weight``.

* **round robin** — take turns. Even counts, blind to how busy or slow an instance is.
* **random** — even on average, with no shared counter (good when many balancers share the instances).
* **least outstanding requests** — the instance with the fewest requests in flight. A slow instance
  accumulates in-flight requests, so it gets fewer new ones: the strategy that follows real load.
* **weighted** (smooth weighted round robin, as in nginx) — instance with weight 3 gets 3 of every 4
  requests when the other has weight 1, interleaved rather than in bursts.

Framework-free: no FastAPI, no HTTP. The gateway keeps one balancer per service.
"""

from __future__ import annotations

import random
from typing import Protocol, Sequence

from services.core.vocabulary import BALANCERS


class Candidate(Protocol):
    instance_id: str
    outstanding: int
    weight: int


class RoundRobin:
    name = "round_robin"

    def __init__(self):
        self.turn = 0

    def pick(self, candidates: Sequence[Candidate]) -> Candidate | None:
        if not candidates:
            return None
        chosen = candidates[self.turn % len(candidates)]
        self.turn += 1
        return chosen


class RandomChoice:
    name = "random"

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random.Random()

    def pick(self, candidates: Sequence[Candidate]) -> Candidate | None:
        return self.rng.choice(candidates) if candidates else None


class LeastOutstanding:
    name = "least_outstanding"

    def __init__(self):
        self.turn = 0  # ties are broken by rotating, so idle instances still share the work evenly

    def pick(self, candidates: Sequence[Candidate]) -> Candidate | None:
        if not candidates:
            return None
        fewest = min(c.outstanding for c in candidates)
        tied = [c for c in candidates if c.outstanding == fewest]
        self.turn += 1
        return tied[self.turn % len(tied)]


class Weighted:
    """Smooth weighted round robin: every pick adds each weight to its instance's score, the highest
    score wins and pays back the total. Over sum(weights) picks each instance is chosen weight times."""

    name = "weighted"

    def __init__(self):
        self.scores: dict[str, int] = {}

    def pick(self, candidates: Sequence[Candidate]) -> Candidate | None:
        if not candidates:
            return None
        total = 0
        for c in candidates:
            weight = max(1, c.weight)
            self.scores[c.instance_id] = self.scores.get(c.instance_id, 0) + weight
            total += weight
        chosen = max(candidates, key=lambda c: self.scores[c.instance_id])
        self.scores[chosen.instance_id] -= total
        return chosen


_BALANCER_CLASSES = {cls.name: cls for cls in (RoundRobin, RandomChoice, LeastOutstanding, Weighted)}
assert tuple(_BALANCER_CLASSES) == BALANCERS, "services/core/vocabulary.py names exactly the balancers here"


def make_balancer(strategy: str):
    """A new balancer by name; ValueError naming the choices for anything else."""
    try:
        return _BALANCER_CLASSES[strategy]()
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(BALANCERS)}") from None
