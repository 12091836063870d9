"""Overlapping children merged into their union, but not clipped to the parent: the part of the worker's
span that runs after the request answered is subtracted from the request, which never waited for it."""
# REFUSED BY: a child that ends after its parent (the event hop) takes only the part inside its parent
# REPLACES: self_times
def self_times(spans: pd.DataFrame) -> pd.Series:
    per_service = {}
    for span_id, service, duration in zip(spans["span_id"], spans["service"], spans["duration_ms"]):
        children = spans[spans["parent_id"] == span_id]
        covered, reach = 0.0, float("-inf")
        for low, high in sorted(zip(children["start_ms"], children["start_ms"] + children["duration_ms"])):
            if high > reach:
                covered += high - max(low, reach)
                reach = high
        per_service[service] = per_service.get(service, 0.0) + duration - covered
    return pd.Series(per_service).sort_values(ascending=False)
