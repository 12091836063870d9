"""The transactional outbox: a committed write never loses its event, and Redis may be down meanwhile.

The problem: "write SQLite, then XADD to Redis" loses the event when the process dies (or Redis is down)
between the two; "XADD, then write" announces writes that may never commit. The outbox fixes both:

1. the business write and an ``outbox`` row holding its event are inserted in ONE SQLite transaction
   (``add_to_outbox(tx, event, topic)`` inside the repository's ``with db.transaction() as tx:``);
2. a relay task publishes unsent rows to Redis and marks them sent. While Redis is down it retries with
   backoff; the rows wait in SQLite, so nothing is lost.

A relay can crash after publishing and before marking a row sent; it will publish that row again.
``publish_event`` is therefore idempotent by event id: one Lua script checks a dedupe key and XADDs in
the same atomic step, so the stream gets each event exactly once (the keys share a hash tag, see keys.py).

Where an event goes: the topic's stream (the durable log consumer groups read), the subject's own stream
(its audit trail: a claim's history is one XRANGE, no scan of the whole log) and the topic's pub/sub
channel (real-time fan-out to whoever listens right now).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import redis.asyncio as aioredis

from services.core import keys
from services.core.redis_client import REDIS_DOWN_OR_REFUSING

from .envelope import Event, utc_timestamp
from .replicated import eval_replicated, is_cluster
from .trace_context import publishing

log = logging.getLogger("lab.outbox")

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_subject ON outbox (subject, seq);
"""

# KEYS: dedupe marker, topic stream, subject stream. ARGV: event JSON, type, subject, dedupe TTL,
# topic stream max length, pub/sub channel. Returns {1, entry id} when added, {0, entry id} when it was
# already there. PUBLISH is not a key operation, so it may go to any channel from here.
PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
                      'event', ARGV[1], 'type', ARGV[2], 'subject', ARGV[3])
redis.call('XADD', KEYS[3], '*', 'event', ARGV[1], 'log_id', id)
redis.call('SET', KEYS[1], id, 'EX', ARGV[4])
redis.call('PUBLISH', ARGV[6], ARGV[1])
return {1, id}
"""


def add_to_outbox(tx: sqlite3.Connection, event: Event, topic: str) -> None:
    """Record ``event`` in the same transaction as the write it describes (call inside ``db.transaction()``)."""
    tx.execute("INSERT INTO outbox (event_id, topic, subject, payload, created_at) VALUES (?, ?, ?, ?, ?)",
               (event.id, topic, event.subject, event.to_json(), event.time))


def unsent_rows(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT seq, event_id, topic, subject, payload FROM outbox WHERE sent_at IS NULL "
                        "ORDER BY seq LIMIT ?", (limit,)).fetchall()


def mark_sent(conn: sqlite3.Connection, seqs: list[int], when: str) -> None:
    """One statement, so one commit for the whole batch (a commit per row would cost a disk sync each)."""
    conn.execute(f"UPDATE outbox SET sent_at = ? WHERE seq IN ({', '.join('?' * len(seqs))})", (when, *seqs))


def outbox_backlog(conn: sqlite3.Connection) -> int:
    """How many committed events are not in Redis yet."""
    return conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]


def events_of_subject(conn: sqlite3.Connection, subject: str) -> list[Event]:
    """A subject's events from the outbox itself: the audit trail when Redis cannot answer."""
    rows = conn.execute("SELECT payload FROM outbox WHERE subject = ? ORDER BY seq", (subject,)).fetchall()
    return [Event.from_json(row[0]) for row in rows]


def _publish_args(event_json: str, event_type: str, subject: str, topic: str, dedupe_ttl_s: int, maxlen: int):
    return dict(keys=[keys.published(topic, _event_id(event_json)), keys.stream(topic),
                      keys.subject_history(topic, subject)],
                args=[event_json, event_type, subject, dedupe_ttl_s, maxlen, keys.channel(topic)])


def _event_id(event_json: str) -> str:
    return Event.from_json(event_json).id


async def publish_event(r: aioredis.Redis, event: Event, topic: str, dedupe_ttl_s: int = 7 * 24 * 3600,
                        maxlen: int = 100_000) -> tuple[bool, str]:
    """Put ``event`` in the topic's log, its subject's stream and channel — once. (added?, log entry id)."""
    script = r.register_script(PUBLISH_ONCE)
    added, entry_id = await script(**_publish_args(event.to_json(), event.type, event.subject, topic,
                                                   dedupe_ttl_s, maxlen))
    return bool(added), entry_id


async def relay_once(r: aioredis.Redis, conn: sqlite3.Connection, batch: int = 100, pipelined: bool = True,
                     dedupe_ttl_s: int = 7 * 24 * 3600, maxlen: int = 100_000, replicas: int = 0,
                     replica_timeout_ms: int = 200) -> int:
    """Publish up to ``batch`` unsent outbox rows, then mark them sent. Returns how many.

    Pipelined: the whole batch is one round trip. One by one: a round trip per event (for comparison).
    Raises a Redis connection error when Redis is down; the rows stay unsent. On a cluster, ``replicas > 0``
    marks a row sent only once that many replicas hold its event (``replicated.py``, lesson 09).
    """
    rows = unsent_rows(conn, batch)
    if not rows:
        return 0
    events = [Event.from_json(row["payload"]) for row in rows]
    calls = [_publish_args(row["payload"], event.type, row["subject"], row["topic"], dedupe_ttl_s, maxlen)
             for row, event in zip(rows, events)]
    with publishing(events):  # each event's "publish" span joins the trace of the request that wrote it
        if replicas and is_cluster(r):
            await eval_replicated(r, PUBLISH_ONCE, [(call["keys"], call["args"]) for call in calls], replicas,
                                  replica_timeout_ms)
        elif pipelined:
            # EVAL with the script's text, not EVALSHA: a cluster pipeline refuses EVALSHA (a node may not
            # have the script cached, and the client cannot reload it mid-pipeline); the server caches the
            # compiled script by its hash either way.
            async with r.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.eval(PUBLISH_ONCE, len(call["keys"]), *call["keys"], *call["args"])
                await pipe.execute()
        else:
            script = r.register_script(PUBLISH_ONCE)
            for call in calls:
                await script(**call)
    mark_sent(conn, [row["seq"] for row in rows], utc_timestamp())
    return len(rows)


async def run_relay(r: aioredis.Redis, conn: sqlite3.Connection, wake: asyncio.Event, *, batch: int = 100,
                    poll_s: float = 0.5, dedupe_ttl_s: int = 7 * 24 * 3600, maxlen: int = 100_000,
                    max_backoff_s: float = 2.0, replicas: int = 0) -> None:
    """Forever: drain the outbox, then sleep until woken (a write happened) or ``poll_s`` passed.

    While Redis is down: wait with exponential backoff (50 ms doubling to ``max_backoff_s``) and try again.
    """
    backoff = 0.05
    while True:
        wake.clear()  # before reading the outbox: a write from now on wakes the next round
        try:
            sent = await relay_once(r, conn, batch, True, dedupe_ttl_s, maxlen, replicas)
            backoff = 0.05
        except REDIS_DOWN_OR_REFUSING as exc:  # down, or refusing writes (OOM under noeviction, ...)
            log.warning("outbox relay: Redis unreachable or refusing (%s); %d event(s) waiting; retry in %.2f s",
                        type(exc).__name__, outbox_backlog(conn), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        if sent < batch:  # drained: wait for the next write
            try:
                await asyncio.wait_for(wake.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
