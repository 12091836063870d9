"""SET, then PEXPIRE: a process killed between the two is registered forever — the TTL was the whole point."""
# REFUSED BY: a registration never exists without its TTL, even for a moment
# REPLACES: register
def register(r, service: str, instance_id: str, address: str, ttl_s: float) -> None:
    value = json.dumps({"address": address, "registered_at": time.time()})
    r.set(registration_key(service, instance_id), value)
    r.pexpire(registration_key(service, instance_id), int(ttl_s * 1000))
    r.zadd(index_key(service), {instance_id: time.time()})
