"""A fixed TTL plus a short pause per miss: the TTLs read back differ only by the time that passed, so
they look "spread" to a check that counts distinct values — but nothing is random, and they all expire
within milliseconds of each other."""
# REFUSED BY: every copy gets its own random TTL, spread across the whole jitter range
# REPLACES: get_policy
def get_policy(r, policy_id: str) -> dict | None:
    import time

    cached = r.get(policy_key(policy_id))
    if cached is not None:
        return json.loads(cached)
    policy = load_policy(policy_id)
    if policy is None:
        return None
    time.sleep(0.002)
    r.set(policy_key(policy_id), json.dumps(policy, separators=(",", ":")), px=TTL_S * 1000)
    return policy
