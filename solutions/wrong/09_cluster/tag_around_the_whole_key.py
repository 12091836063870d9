"""Braces around the kind *and* the id (``{profile:CUS-000001}``): the tag differs for each of the
customer's keys, so it groups nothing — the same as no tag. The tag must be the part the keys share."""
# REFUSED BY: a customer's three keys hash to one slot
# REPLACES: profile_key
def profile_key(customer_id: str) -> str:
    return keys.exercise("09", f"{{profile:{customer_id}}}")
# REPLACES: open_claims_key
def open_claims_key(customer_id: str) -> str:
    return keys.exercise("09", f"{{open-claims:{customer_id}}}")
# REPLACES: claim_list_key
def claim_list_key(customer_id: str) -> str:
    return keys.exercise("09", f"{{claims:{customer_id}}}")
