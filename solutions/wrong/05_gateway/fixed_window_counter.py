"""A fixed window (INCR + PEXPIRE), atomic in Lua but not sliding: a client can send `limit` requests at
the end of one window and `limit` more at the start of the next."""
# REFUSED BY: the limiter allows `limit` requests per window, refuses the rest, and keeps its state in Redis
# REPLACES: allow_request
def allow_request(r, client: str, limit: int, window_s: float) -> bool:
    script = """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return n <= tonumber(ARGV[1]) and 1 or 0
    """
    return r.eval(script, 1, limiter_key(client), limit, int(window_s * 1000)) == 1
