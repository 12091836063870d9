"""Each span's duration minus the sum of its children's durations: children that run at the same time are
subtracted twice, and a child that outlives its parent (the event hop) takes time the parent never spent —
parents end up with too little, even negative, self time."""
# REFUSED BY: two child spans running at once are subtracted once (their union, not their sum)
# REFUSED BY: a child that ends after its parent (the event hop) takes only the part inside its parent
# REPLACES: self_times
def self_times(spans: pd.DataFrame) -> pd.Series:
    children = spans.groupby("parent_id")["duration_ms"].sum()
    own = spans["duration_ms"] - spans["span_id"].map(children).fillna(0)
    return own.groupby(spans["service"]).sum().sort_values(ascending=False)
