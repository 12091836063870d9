"""KEYS walks every key of the server to find a few registrations — it blocks Redis for as long as that
takes — and it lists keys that match a pattern, not instances the index names."""
# REFUSED BY: live_instances() reads the index, never KEYS or SCAN
# REPLACES: live_instances
def live_instances(r, service: str) -> list[str]:
    prefix = registration_key(service, "")
    return sorted(key[len(prefix):] for key in r.keys(prefix + "*"))
