"""No PEXPIRE: the sorted set of every client that ever called stays in Redis forever."""
# REFUSED BY: the limiter allows `limit` requests per window, refuses the rest, and keeps its state in Redis
# REPLACES: allow_request
def allow_request(r, client: str, limit: int, window_s: float) -> bool:
    script = """
    local key, limit, window_ms, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window_ms)
    if redis.call('ZCARD', key) < limit then
      redis.call('ZADD', key, now_ms, member)
      return 1
    end
    return 0
    """
    return r.eval(script, 1, limiter_key(client), limit, int(window_s * 1000), uuid.uuid4().hex) == 1
