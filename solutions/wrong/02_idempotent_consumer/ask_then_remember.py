"""Check-then-act: SISMEMBER first, SADD later. Alone it counts right; with two consumers, both can ask
"seen before?" before either remembers, and the event is counted twice."""
# REFUSED BY: two consumers at once, each with a copy of the same event, count it once
# REPLACES: handle_batch
def handle_batch(r, consumer: str, count: int = 10) -> int:
    answer = r.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
    entries = answer[0][1] if answer else []
    for entry_id, fields in entries:
        event = Event.from_json(fields["event"])
        if not r.sismember(PROCESSED, event.id):
            r.hincrby(TOTALS, event.data["customer_id"], event.data["amount_cents"])
            r.sadd(PROCESSED, event.id)
        r.xack(STREAM, GROUP, entry_id)
    return len(entries)
