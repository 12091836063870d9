"""rotate() issues a new id but leaves the old one alive: an attacker who planted the old id (session
fixation) is still logged in."""
# REFUSED BY: rotate() issues a new id and kills the old one; destroy() logs out
# REPLACES: rotate
def rotate(r, session_id: str, idle_s: int, absolute_s: int) -> str:
    fields = validate(r, session_id, idle_s)
    if fields is None:
        raise KeyError("no such session")
    return create(r, fields["user_id"], fields["roles"].split(","), idle_s, absolute_s)
