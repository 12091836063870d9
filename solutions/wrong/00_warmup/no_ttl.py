"""The value is stored without an expiry: it lives forever."""
# REFUSED BY: the key gets the TTL it was asked for
# REFUSED BY: a remembered value is gone after its TTL
# REPLACES: remember
def remember(r, name: str, value: str, ttl_s: int = 60) -> None:
    r.set(keys.warmup(name), value)
