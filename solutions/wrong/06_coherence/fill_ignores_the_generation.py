"""fill() stores whatever it is given: the stale-set race is wide open."""
# REFUSED BY: the stale-set race, replayed step by step, leaves no stale copy behind
# REPLACES: fill
def fill(r, entity_id: str, value: str, generation: str, ttl_ms: int) -> bool:
    r.set(copy_key(entity_id), value, px=ttl_ms)
    return True
