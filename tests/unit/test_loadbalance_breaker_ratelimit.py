"""Balancing strategies and the circuit breaker (plain Python), the rate limiter against the real server."""

import asyncio
import secrets
from collections import Counter
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from services.core import keys
from services.patterns.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from services.patterns.loadbalance import BALANCERS, LeastOutstanding, RoundRobin, Weighted, make_balancer
from services.patterns.ratelimit import SlidingWindowLimiter

from redis_async import PATIENT  # generous client timeouts for many connections at once


@dataclass(eq=False)
class Box:
    instance_id: str
    outstanding: int = 0
    weight: int = 1


BOXES = [Box("a"), Box("b"), Box("c")]


def test_round_robin_takes_turns():
    rr = RoundRobin()
    assert [rr.pick(BOXES).instance_id for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_random_spreads_roughly_evenly():
    counts = Counter(make_balancer("random").pick(BOXES).instance_id for _ in range(3000))
    assert set(counts) == {"a", "b", "c"} and min(counts.values()) > 800


def test_least_outstanding_avoids_the_busy_instance_and_shares_ties():
    busy = [Box("a", outstanding=5), Box("b", outstanding=0), Box("c", outstanding=0)]
    balancer = LeastOutstanding()
    counts = Counter(balancer.pick(busy).instance_id for _ in range(100))
    assert counts["a"] == 0 and counts["b"] == counts["c"] == 50


def test_weighted_gives_each_instance_its_share_interleaved():
    boxes = [Box("a", weight=3), Box("b", weight=1)]
    w = Weighted()
    picks = [w.pick(boxes).instance_id for _ in range(8)]
    assert Counter(picks) == {"a": 6, "b": 2}
    assert picks[:4].count("b") == 1, "smooth: b's turn comes inside each cycle of 4, not at the end"


def test_every_strategy_answers_none_without_candidates_and_unknown_names_are_refused():
    assert all(make_balancer(name).pick([]) is None for name in BALANCERS)
    with pytest.raises(ValueError, match="round_robin"):
        make_balancer("fastest")


def test_breaker_goes_closed_open_half_open_closed():
    b = CircuitBreaker(failure_threshold=3, open_s=2.0)
    for t in (0, 1, 2):
        assert b.allows(now=t)
        b.on_failure(now=t)
    assert b.state == OPEN and not b.allows(now=3.9)
    assert b.allows(now=4.1) and b.state == HALF_OPEN
    b.on_send()
    assert not b.allows(now=4.2), "half-open lets one trial through at a time"
    b.on_success()
    assert b.state == CLOSED and b.failures == 0


def test_breaker_reopens_when_the_half_open_trial_fails():
    b = CircuitBreaker(failure_threshold=1, open_s=1.0)
    b.on_failure(now=0)
    assert b.allows(now=1.5) and b.state == HALF_OPEN
    b.on_send()
    b.on_failure(now=1.6)
    assert b.state == OPEN and not b.allows(now=2.0) and b.allows(now=2.7)


def test_sliding_window_allows_the_limit_then_refuses_with_a_retry_after(redis_url):
    client = f"unit-{secrets.token_hex(4)}"

    async def body():
        r = aioredis.Redis.from_url(redis_url, decode_responses=True)
        # 2 s: the seven checks must fall in one window even when a busy machine stalls this process
        limiter = SlidingWindowLimiter(r, limit=5, window_s=2)
        first = [await limiter.check(client) for _ in range(7)]
        size = await r.zcard(keys.rate_limit(client))
        await asyncio.sleep(2.05)  # the window slides past every request
        later = await limiter.check(client)
        ttl = await r.pttl(keys.rate_limit(client))
        await r.aclose()
        return first, size, later, ttl

    first, size, later, ttl = asyncio.run(body())
    assert [d.allowed for d in first] == [True] * 5 + [False] * 2
    assert [d.remaining for d in first[:5]] == [4, 3, 2, 1, 0]
    assert 0 < first[5].retry_after_ms <= 2000 and first[5].retry_after_s in (1, 2)
    assert size == 5, "refused requests are not counted in the window"
    assert later.allowed and 0 < ttl <= 2000, "the window's key expires by itself"


def test_sliding_window_is_atomic_under_concurrency(redis_url):
    """50 concurrent checks against a limit of 10: exactly 10 pass (no read-then-write race)."""
    client = f"unit-{secrets.token_hex(4)}"

    async def body():
        r = aioredis.Redis.from_url(redis_url, decode_responses=True, **PATIENT)  # 50 connections at once
        limiter = SlidingWindowLimiter(r, limit=10, window_s=60)  # all 50 in one window, however slow
        decisions = await asyncio.gather(*(limiter.check(client) for _ in range(50)))
        await r.delete(keys.rate_limit(client))
        await r.aclose()
        return decisions

    assert sum(d.allowed for d in asyncio.run(body())) == 10
