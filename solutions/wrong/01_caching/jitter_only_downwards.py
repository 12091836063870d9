"""The factor is drawn between 1 - JITTER and 1: copies only ever live shorter than TTL_S."""
# REFUSED BY: every copy gets its own random TTL, spread across the whole jitter range
# REPLACES: get_policy
def get_policy(r, policy_id: str) -> dict | None:
    cached = r.get(policy_key(policy_id))
    if cached is not None:
        return json.loads(cached)
    policy = load_policy(policy_id)
    if policy is None:
        return None
    ttl_ms = round(TTL_S * 1000 * random.uniform(1 - JITTER, 1))
    r.set(policy_key(policy_id), json.dumps(policy, separators=(",", ":")), px=ttl_ms)
    return policy
