"""The generation is compared in Python, then SET: a write that commits between the GET and the SET is
missed, and the old value is cached after the write — the very race the generation was meant to close."""
# REFUSED BY: fill() checks and stores in one step: a write landing right after its first round trip leaves no stale copy
# REPLACES: fill
def fill(r, entity_id: str, value: str, generation: str, ttl_ms: int) -> bool:
    if (r.get(generation_key(entity_id)) or "") != generation:
        return False
    r.set(copy_key(entity_id), value, px=ttl_ms)
    return True
