"""SCAN does not block like KEYS, but still walks the whole keyspace on every lookup."""
# REFUSED BY: live_instances() reads the index, never KEYS or SCAN
# REPLACES: live_instances
def live_instances(r, service: str) -> list[str]:
    prefix = registration_key(service, "")
    return sorted(key[len(prefix):] for key in r.scan_iter(match=prefix + "*", count=1000))
