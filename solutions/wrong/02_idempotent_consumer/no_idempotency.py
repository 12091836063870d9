"""Every entry is counted: an event published twice (or redelivered) is paid twice."""
# REFUSED BY: duplicates are counted once in the totals
# REPLACES: handle_batch
def handle_batch(r, consumer: str, count: int = 10) -> int:
    answer = r.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
    entries = answer[0][1] if answer else []
    for entry_id, fields in entries:
        event = Event.from_json(fields["event"])
        r.hincrby(TOTALS, event.data["customer_id"], event.data["amount_cents"])
        r.xack(STREAM, GROUP, entry_id)
    return len(entries)
