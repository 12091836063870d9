"""The claims worker's business rule: a risk score per submitted claim, and when it sends a claim to review.

Deliberately simple so the lesson is about the plumbing: the score is the share of the policy's cover the
claim asks for (0..1). From ``review_threshold`` on, the worker moves the claim to ``under_review``.
"""

from __future__ import annotations

from services.patterns.envelope import Event
from services.patterns.streams import PoisonEvent


def risk_score(event: Event) -> float:
    """amount / coverage of a ``claim.submitted`` event; PoisonEvent when the event lacks what it needs."""
    claim = event.data.get("claim")
    coverage = event.data.get("coverage_cents")
    if not isinstance(claim, dict) or not isinstance(claim.get("amount_cents"), int):
        raise PoisonEvent("claim.submitted without data.claim.amount_cents")
    if not isinstance(coverage, int) or coverage <= 0:
        raise PoisonEvent("claim.submitted without a positive data.coverage_cents")
    return round(min(claim["amount_cents"] / coverage, 1.0), 3)
