"""The right calls in the wrong order: the copy is deleted before the system of record is written, so a
reader in between loads the old row and caches it again — stale until its TTL."""
# REFUSED BY: a reader arriving during an update cannot put the old value back in the cache
# REPLACES: update_policy
def update_policy(r, policy_id: str, changes: dict) -> dict:
    r.delete(policy_key(policy_id))
    return save_policy(policy_id, changes)
