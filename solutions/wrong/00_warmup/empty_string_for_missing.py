"""recall() answers "" for a name never stored: the caller cannot tell "empty" from "missing"."""
# REFUSED BY: recall() reads the value back, and None for a name never stored
# REPLACES: recall
def recall(r, name: str) -> str | None:
    return r.get(keys.warmup(name)) or ""
