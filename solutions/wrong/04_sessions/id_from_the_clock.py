"""uuid1(): unique, but made of the clock and the machine's address — most of it is the same in every id,
and the rest is guessable from the time of login."""
# REFUSED BY: session ids are unpredictable: long, unrelated to each other, from a cryptographic source
# REPLACES: create
def create(r, user_id: str, roles: list[str], idle_s: int, absolute_s: int) -> str:
    import uuid

    session_id = str(uuid.uuid1())
    now = time.time()
    key = session_key(session_id)
    with r.pipeline() as pipe:
        pipe.hset(key, mapping={"user_id": user_id, "roles": ",".join(roles), "created_at": now,
                                "expires_at": now + absolute_s})
        pipe.expire(key, min(idle_s, absolute_s))
        pipe.execute()
    return session_id
