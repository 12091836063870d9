"""validate() slides the idle TTL but never looks at expires_at: a session in steady use lives forever."""
# REFUSED BY: the absolute cap wins over activity
# REPLACES: validate
def validate(r, session_id: str, idle_s: int) -> dict | None:
    key = session_key(session_id)
    fields = r.hgetall(key)
    if not fields:
        return None
    r.expire(key, idle_s)
    return fields
