"""An unknown id is cached as "null": a policy created under that id stays invisible until the TTL ends."""
# REFUSED BY: an unknown id answers None and caches nothing; the policy is found once created
# REPLACES: get_policy
def get_policy(r, policy_id: str) -> dict | None:
    cached = r.get(policy_key(policy_id))
    if cached is not None:
        return json.loads(cached)
    policy = load_policy(policy_id)
    ttl_ms = round(TTL_S * 1000 * random.uniform(1 - JITTER, 1 + JITTER))
    r.set(policy_key(policy_id), json.dumps(policy, separators=(",", ":")), px=ttl_ms)
    return policy
