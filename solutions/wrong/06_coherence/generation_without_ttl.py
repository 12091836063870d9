"""The generation is bumped and the copy deleted in one transaction, but the generation never expires: one
key per entity ever written, forever."""
# REFUSED BY: invalidate_after_write() deletes the copy and moves the generation, in one transaction
# REPLACES: invalidate_after_write
def invalidate_after_write(r, entity_id: str) -> None:
    with r.pipeline(transaction=True) as pipe:
        pipe.incr(generation_key(entity_id))
        pipe.delete(copy_key(entity_id))
        pipe.execute()
