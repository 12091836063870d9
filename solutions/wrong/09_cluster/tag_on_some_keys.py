"""The profile and the counter carry the customer's tag, the list does not: two keys share a slot, the
third is elsewhere, and the script that touches all three is refused (CROSSSLOT) — a bug that a test
touching only the first two keys would never see."""
# REFUSED BY: a customer's three keys hash to one slot
# REFUSED BY: the script runs on the cluster, and files each claim once
# REPLACES: claim_list_key
def claim_list_key(customer_id: str) -> str:
    return keys.exercise("09", f"claims:{customer_id}")
