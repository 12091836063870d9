"""The claims worker (:3004): scores every submitted claim and sends risky ones to review.

It reads ``lab:stream:claims`` through the consumer group ``claims-worker`` (see
``services/patterns/streams.py``): at-least-once, reclaiming what a dead worker left pending, dead-lettering
what cannot be handled. It changes a claim only through the claims service's API, so the claims service
stays the one system of record. Its HTTP side is just ``/health``, which reports the group's lag and
pending count (``labkit status`` shows them).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from fastapi import FastAPI
from opentelemetry import trace

from services.core import keys
from services.core.redis_client import REDIS_DOWN, REDIS_DOWN_OR_REFUSING
from services.patterns.envelope import Event, EventType
from services.patterns.streams import ConsumerStats, consume_once, ensure_group, group_progress
from services.platform.access import peer_identity_header
from services.platform.app import ServiceSpec, create_app
from services.platform.state import AppState

from .scoring import risk_score

log = logging.getLogger("lab.worker")
TOPIC = "claims"


@dataclass(slots=True, eq=False)
class WorkerState(AppState):
    """The worker's state: the common one, plus what its consumer has done (``/health`` shows it)."""

    worker_stats: ConsumerStats = field(default_factory=ConsumerStats)


async def triage_claim(app: FastAPI, event: Event) -> None:
    """Idempotent: an event id already handled is skipped (a reclaimed entry may come twice)."""
    if event.type != EventType.CLAIM_SUBMITTED:
        return
    s, r = app.state.settings, app.state.redis
    done = keys.processed(s.worker_group, event.id)
    if await r.exists(done):
        return
    score = risk_score(event)
    trace.get_current_span().set_attribute("lab.risk_score", score)  # on the "process" span (lesson 10)
    await r.hset(keys.risk_scores(), event.subject, score)
    if score >= s.worker_review_threshold:
        path = f"/claims/{event.subject}/status"
        async with app.state.http.post(
                f"{s.url_of('claims')}{path}",
                json={"status": "under_review", "note": f"auto-triage: risk score {score:.2f}"},
                headers=peer_identity_header(s, "worker", "claims", "POST", path)) as response:
            status = response.status
        # 409: a person got there first (it is already under review, or moved on): the worker's job is done
        if status not in (200, 404, 409):
            raise RuntimeError(f"the claims service answered {status}")
    await r.set(done, 1, ex=s.events_dedupe_ttl_s)
    # one line per claim scored; inside the event's trace, so it ends with trace=<id> (lesson 10)
    log.info("worker: %s scored %.2f%s", event.subject, score,
             " -> under_review" if score >= s.worker_review_threshold else "")


async def consume_forever(app: FastAPI) -> None:
    s, r = app.state.settings, app.state.redis
    stream, stats = keys.stream(TOPIC), app.state.worker_stats
    block_ms = int(min(500, s.redis_timeout_s * 500))  # a blocking read must end before the socket timeout

    async def handler(event: Event) -> None:
        await triage_claim(app, event)

    backoff = 0.05
    while True:
        try:
            await ensure_group(r, stream, s.worker_group)
            while True:
                await consume_once(r, stream, s.worker_group, app.state.instance_id, handler,
                                   dead_key=keys.dead_letter(TOPIC), block_ms=block_ms,
                                   min_idle_ms=s.worker_reclaim_idle_ms, max_deliveries=s.worker_max_deliveries,
                                   stats=stats)
                backoff = 0.05
        except REDIS_DOWN_OR_REFUSING as exc:  # down, or e.g. NOGROUP after a Redis that lost its data
            log.warning("worker: Redis unreachable or refusing (%s: %s); retry in %.2f s", type(exc).__name__, exc,
                        backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


async def consumer_health(app: FastAPI) -> dict:
    try:
        progress = await group_progress(app.state.redis, keys.stream(TOPIC), app.state.settings.worker_group)
    except REDIS_DOWN:
        progress = {"lag": None, "pending": None}
    except Exception:  # noqa: BLE001 - the stream does not exist yet
        progress = {"lag": 0, "pending": 0}
    return {"consumer": {"stream": keys.stream(TOPIC), "group": app.state.settings.worker_group,
                         **progress, **app.state.worker_stats.as_dict()}}


async def start_consumer(app: FastAPI) -> None:
    app.state.health_extra = consumer_health
    app.state.tasks.start("claims-worker", consume_forever(app))


SPEC = ServiceSpec(name="worker", routers=[], on_startup=[start_consumer], state=WorkerState,
                   description="The claims worker: risk-scores submitted claims from lab:stream:claims "
                               "(consumer group) and moves risky ones to under_review.")


def build(**kwargs):
    return create_app(SPEC, **kwargs)
