"""deregister() deletes the registration but leaves the id in the index, which then grows forever."""
# REFUSED BY: deregister() removes the registration and the index entry at once
# REPLACES: deregister
def deregister(r, service: str, instance_id: str) -> None:
    r.delete(registration_key(service, instance_id))
