"""The random factor is drawn once, not per copy: the TTL is "jittered" but every copy gets the same one —
the right idea applied once instead of each time."""
# REFUSED BY: every copy gets its own random TTL, spread across the whole jitter range
# REPLACES: get_policy
FACTOR = random.uniform(1 - JITTER, 1 + JITTER)


def get_policy(r, policy_id: str) -> dict | None:
    cached = r.get(policy_key(policy_id))
    if cached is not None:
        return json.loads(cached)
    policy = load_policy(policy_id)
    if policy is None:
        return None
    r.set(policy_key(policy_id), json.dumps(policy, separators=(",", ":")), px=round(TTL_S * 1000 * FACTOR))
    return policy
