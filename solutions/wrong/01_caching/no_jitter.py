"""A fixed TTL: every copy made together expires together, and the system of record takes the stampede."""
# REFUSED BY: every copy gets its own random TTL, spread across the whole jitter range
# REPLACES: get_policy
def get_policy(r, policy_id: str) -> dict | None:
    cached = r.get(policy_key(policy_id))
    if cached is not None:
        return json.loads(cached)
    policy = load_policy(policy_id)
    if policy is None:
        return None
    r.set(policy_key(policy_id), json.dumps(policy, separators=(",", ":")), ex=TTL_S)
    return policy
