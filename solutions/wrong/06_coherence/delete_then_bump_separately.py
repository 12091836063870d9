"""The right calls in the wrong order, and not in a transaction: the copy goes first, the generation moves
later — a reader holding the old generation fills in between, and its stale copy survives the write."""
# REFUSED BY: invalidate_after_write() is one transaction: a slow reader cannot fill between its steps
# REPLACES: invalidate_after_write
def invalidate_after_write(r, entity_id: str) -> None:
    r.delete(copy_key(entity_id))
    r.incr(generation_key(entity_id))
    r.pexpire(generation_key(entity_id), GENERATION_TTL_MS)
