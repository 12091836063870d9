"""SET, then PEXPIRE: a client that dies between the two leaves a copy that never expires."""
# REFUSED BY: the value and its TTL are written in one command
# REPLACES: get_policy
def get_policy(r, policy_id: str) -> dict | None:
    cached = r.get(policy_key(policy_id))
    if cached is not None:
        return json.loads(cached)
    policy = load_policy(policy_id)
    if policy is None:
        return None
    r.set(policy_key(policy_id), json.dumps(policy, separators=(",", ":")))
    r.pexpire(policy_key(policy_id), round(TTL_S * 1000 * random.uniform(1 - JITTER, 1 + JITTER)))
    return policy
