"""One constant tag, ``{customers}``, for every key of every customer. The script runs — every key is in
one slot — but so is every customer: one primary holds and serves the whole schema, the others idle, and
adding primaries changes nothing (a reshard cannot split a slot). The tag must be the smallest unit one
script needs together: the customer."""
# REFUSED BY: different customers spread over the cluster (not all on one slot)
# REPLACES: profile_key
def profile_key(customer_id: str) -> str:
    return keys.exercise("09", f"{{customers}}:profile:{customer_id}")
# REPLACES: open_claims_key
def open_claims_key(customer_id: str) -> str:
    return keys.exercise("09", f"{{customers}}:open-claims:{customer_id}")
# REPLACES: claim_list_key
def claim_list_key(customer_id: str) -> str:
    return keys.exercise("09", f"{{customers}}:claims:{customer_id}")
