"""The gateway's state: the common ``AppState`` plus what only the front door holds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from services.core.db import Database
from services.patterns.ratelimit import SlidingWindowLimiter
from services.platform.state import AppState

from .response_cache import ResponseCache
from .upstreams import Upstreams


@dataclass(slots=True, eq=False)
class GatewayState(AppState):
    upstream_session: aiohttp.ClientSession | None = None  # one pool to every instance (aiohttp: FIELD-NOTES)
    upstreams: Upstreams | None = None  # the local view of the registry, health-checked (lesson 03, 05)
    rate_limiter: SlidingWindowLimiter | None = None  # None when LAB_RATE_LIMIT_REQUESTS is 0
    response_cache: ResponseCache | None = None  # whole answers kept for a moment (lesson 05)
    # What this gateway turned away since it started (GET /services shows them; the dashboard watches):
    # rate_limited (429 from the limiter), logins_locked_out (429 from the login guard), logins_failed (401).
    refusals: Counter = field(default_factory=lambda: Counter(rate_limited=0, logins_locked_out=0, logins_failed=0))
    user_db: Database | None = None  # the lab's users and their password hashes
