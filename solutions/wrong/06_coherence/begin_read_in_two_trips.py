"""Two GETs, two round trips: twice the latency on every read of the hot path."""
# REFUSED BY: begin_read() reads the copy and the generation in one round trip
# REPLACES: begin_read
def begin_read(r, entity_id: str) -> tuple[str | None, str]:
    return r.get(copy_key(entity_id)), r.get(generation_key(entity_id)) or ""
