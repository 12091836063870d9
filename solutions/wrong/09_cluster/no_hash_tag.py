"""No hash tag at all: each key is hashed whole, so a customer's three keys land in three different slots
(and, on a real cluster, on different nodes). The node refuses the script with CROSSSLOT."""
# REFUSED BY: a customer's three keys hash to one slot
# REFUSED BY: the script runs on the cluster, and files each claim once
# REPLACES: profile_key
def profile_key(customer_id: str) -> str:
    return keys.exercise("09", f"profile:{customer_id}")
# REPLACES: open_claims_key
def open_claims_key(customer_id: str) -> str:
    return keys.exercise("09", f"open-claims:{customer_id}")
# REPLACES: claim_list_key
def claim_list_key(customer_id: str) -> str:
    return keys.exercise("09", f"claims:{customer_id}")
