"""The heartbeat registers once and never again: the right idea applied once instead of each interval."""
# REFUSED BY: a heartbeat keeps a short-TTL registration alive; without it, the registration expires
# REPLACES: start_heartbeat
def start_heartbeat(r, service: str, instance_id: str, address: str, interval_s: float,
                    ttl_s: float) -> threading.Event:
    register(r, service, instance_id, address, ttl_s)
    return threading.Event()
