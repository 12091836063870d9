"""Ids from Python's `random`: 128 bits long and all different, but `random` is a Mersenne Twister — from
624 outputs anyone can compute every later one, so whoever collects ids can forge the next session."""
# REFUSED BY: session ids are unpredictable: long, unrelated to each other, from a cryptographic source
# REPLACES: create
def create(r, user_id: str, roles: list[str], idle_s: int, absolute_s: int) -> str:
    import random

    session_id = f"{random.getrandbits(128):032x}"
    now = time.time()
    key = session_key(session_id)
    with r.pipeline() as pipe:
        pipe.hset(key, mapping={"user_id": user_id, "roles": ",".join(roles), "created_at": now,
                                "expires_at": now + absolute_s})
        pipe.expire(key, min(idle_s, absolute_s))
        pipe.execute()
    return session_id
