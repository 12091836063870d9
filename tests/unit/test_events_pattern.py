"""The outbox, idempotent publishing and consumer groups (dead letter, XAUTOCLAIM) against the real server.

Every test uses its own topic name, so it never sees the services' events or another test's.
"""

import sqlite3
import uuid

from services.core import keys
from services.patterns import outbox, streams
from services.patterns.envelope import Event, EventType

from redis_async import run  # the shared async-client helper (tests/unit/redis_async.py)


def new_topic() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def outbox_db(tmp_path) -> sqlite3.Connection:
    tmp_path.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(tmp_path / "sor.sqlite3", isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.executescript(outbox.OUTBOX_SCHEMA)
    return conn


def event(subject="CLM-000001", **data) -> Event:
    return Event(EventType.CLAIM_SUBMITTED, "test", subject, data)


def test_publishing_the_same_event_twice_adds_it_once(redis_url):
    topic, e = new_topic(), event()

    async def body(r):
        first = await outbox.publish_event(r, e, topic)
        second = await outbox.publish_event(r, e, topic)
        return first, second, await r.xlen(keys.stream(topic)), await r.xlen(keys.subject_history(topic, e.subject))
    (added1, id1), (added2, id2), log_length, history_length = run(redis_url, body)
    assert (added1, added2) == (True, False) and id1 == id2
    assert log_length == 1 and history_length == 1


def test_relay_crash_between_publish_and_mark_creates_no_duplicate(redis_url, tmp_path):
    topic, conn = new_topic(), outbox_db(tmp_path)
    for i in range(5):
        outbox.add_to_outbox(conn, event(f"CLM-{i:06d}"), topic)

    async def body(r):
        assert await outbox.relay_once(r, conn) == 5
        conn.execute("UPDATE outbox SET sent_at = NULL")  # as if the relay died before marking them sent
        assert await outbox.relay_once(r, conn) == 5       # it publishes them all again ...
        return await r.xlen(keys.stream(topic))
    assert run(redis_url, body) == 5                       # ... and the log still holds each once
    assert outbox.outbox_backlog(conn) == 0


def test_pipelined_and_one_by_one_relays_write_the_same_log(redis_url, tmp_path):
    results = {}
    for pipelined in (True, False):
        topic, conn = new_topic(), outbox_db(tmp_path / str(pipelined))
        events = [event(f"CLM-{i:06d}", n=i) for i in range(20)]
        for e in events:
            outbox.add_to_outbox(conn, e, topic)

        async def body(r):
            while await outbox.relay_once(r, conn, batch=7, pipelined=pipelined):
                pass
            return [Event.from_json(f["event"]).id for _, f in await r.xrange(keys.stream(topic))]
        results[pipelined] = (run(redis_url, body), [e.id for e in events])
    for published, committed in results.values():
        assert published == committed  # every committed event, once, in commit order


def test_malformed_entry_goes_to_dead_letter_and_the_consumer_keeps_going(redis_url):
    topic = new_topic()
    stream, dead, handled = keys.stream(topic), keys.dead_letter(topic), []

    async def handler(e):
        handled.append(e.subject)

    async def body(r):
        await streams.ensure_group(r, stream, "g")
        await r.xadd(stream, {"event": "{not json"})
        await r.xadd(stream, {"event": '{"id": "x", "type": "claim.submitted"}'})  # fields missing
        await r.xadd(stream, {"event": event("CLM-000007").to_json()})
        looked_at = await streams.consume_once(r, stream, "g", "c1", handler, dead_key=dead, block_ms=100)
        return looked_at, await r.xrange(dead), await streams.group_progress(r, stream, "g")
    looked_at, dead_entries, progress = run(redis_url, body)
    assert looked_at == 3 and handled == ["CLM-000007"]
    assert [e["reason"].split(":")[0] for _, e in dead_entries] == ["malformed event", "malformed event"]
    assert "missing field(s): source, time, subject" in dead_entries[1][1]["reason"]
    assert progress["pending"] == 0 and progress["lag"] == 0


def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(redis_url):
    topic = new_topic()
    stream, dead, attempts = keys.stream(topic), keys.dead_letter(topic), []

    async def flaky(e):
        attempts.append(e.id)
        raise RuntimeError("downstream said no")

    async def body(r):
        await streams.ensure_group(r, stream, "g")
        await r.xadd(stream, {"event": event().to_json()})
        for _ in range(4):  # min_idle_ms=0: each round reclaims the failed entry at once
            await streams.consume_once(r, stream, "g", "c1", flaky, dead_key=dead, block_ms=50, min_idle_ms=0,
                                       max_deliveries=3)
        return await r.xrange(dead), await streams.group_progress(r, stream, "g")
    dead_entries, progress = run(redis_url, body)
    assert len(attempts) == 3
    assert len(dead_entries) == 1 and dead_entries[0][1]["deliveries"] == "3"
    assert "failed 3 deliveries" in dead_entries[0][1]["reason"] and "downstream said no" in dead_entries[0][1]["reason"]
    assert progress["pending"] == 0


def test_entries_a_dead_consumer_left_pending_are_reclaimed_by_another(redis_url):
    topic = new_topic()
    stream, dead, handled = keys.stream(topic), keys.dead_letter(topic), []

    async def handler(e):
        handled.append(e.subject)

    async def body(r):
        await streams.ensure_group(r, stream, "g")
        for i in range(3):
            await r.xadd(stream, {"event": event(f"CLM-{i:06d}").to_json()})
        await r.xreadgroup("g", "doomed", {stream: ">"}, count=3)  # read, then "die" without XACK
        before = await streams.group_progress(r, stream, "g")
        await streams.consume_once(r, stream, "g", "rescuer", handler, dead_key=dead, block_ms=50, min_idle_ms=0)
        after = await streams.group_progress(r, stream, "g")
        return before, after
    before, after = run(redis_url, body)
    assert before["pending"] == 3 and after["pending"] == 0
    assert handled == ["CLM-000000", "CLM-000001", "CLM-000002"]


def test_entries_pending_for_less_than_min_idle_are_left_to_their_consumer(redis_url):
    topic = new_topic()
    stream, dead, handled = keys.stream(topic), keys.dead_letter(topic), []

    async def handler(e):
        handled.append(e.subject)

    async def body(r):
        await streams.ensure_group(r, stream, "g")
        await r.xadd(stream, {"event": event().to_json()})
        await r.xreadgroup("g", "busy", {stream: ">"}, count=1)  # still working on it
        await streams.consume_once(r, stream, "g", "other", handler, dead_key=dead, block_ms=50, min_idle_ms=60_000)
        return await streams.group_progress(r, stream, "g")
    assert run(redis_url, body)["pending"] == 1 and handled == []
