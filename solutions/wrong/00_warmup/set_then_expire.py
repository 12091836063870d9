"""SET, then EXPIRE in a second command: a client that dies in between leaves a key that never expires."""
# REFUSED BY: the value and its TTL arrive together: the key never exists without an expiry
# REPLACES: remember
def remember(r, name: str, value: str, ttl_s: int = 60) -> None:
    r.set(keys.warmup(name), value)
    r.expire(keys.warmup(name), ttl_s)
