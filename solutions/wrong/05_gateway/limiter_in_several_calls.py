"""The sliding window in four separate calls: right when one client asks at a time, but another gateway's
decision can land between the count and the add, and both let the request through."""
# REFUSED BY: a decision is one atomic step: another gateway deciding between any two of your round trips cannot get past the limit
# REPLACES: allow_request
def allow_request(r, client: str, limit: int, window_s: float) -> bool:
    key, now_ms = limiter_key(client), int(time.time() * 1000)
    r.zremrangebyscore(key, "-inf", now_ms - int(window_s * 1000))
    if r.zcard(key) >= limit:
        return False
    r.zadd(key, {uuid.uuid4().hex: now_ms})
    r.pexpire(key, int(window_s * 1000))
    return True
