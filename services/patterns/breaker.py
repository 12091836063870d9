"""A circuit breaker per upstream instance: stop sending requests to an instance that keeps failing.

    closed ──(N failures in a row)──> open ──(after open_s)──> half-open
      ^                                 ^                          │ one trial request
      └────────────(it succeeds)────────┴──────(it fails)──────────┘

Why: without one, every request that lands on a broken instance waits for its error (or its timeout)
before failing over. An open breaker fails fast and leaves the instance alone long enough to recover;
the half-open trial finds out when it has, with a single request instead of a flood.

Plain Python, no I/O: the clock is passed in (``now``), so a test can drive it through every state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    open_s: float = 2.0
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False

    def allows(self, now: float | None = None) -> bool:
        """May a request go to this instance now? (In half-open, only one trial at a time.)"""
        now = time.monotonic() if now is None else now
        if self.state == OPEN and now - self.opened_at >= self.open_s:
            self.state, self.trial_in_flight = HALF_OPEN, False
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.trial_in_flight:
            return True
        return False

    def on_send(self) -> None:
        if self.state == HALF_OPEN:
            self.trial_in_flight = True

    def on_success(self) -> None:
        self.state, self.failures, self.trial_in_flight = CLOSED, 0, False

    def on_failure(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
            self.state, self.opened_at, self.trial_in_flight = OPEN, now, False
