"""Total time per service, not self time: every parent is charged for the children it only waited for, so
the gateway, whose span contains the whole request, looks like the slowest service."""
# REFUSED BY: self_times() of the recorded claim: each service's self time, to 0.01 ms
# REFUSED BY: a span that waits for its child keeps only its own time (self time, not total time)
# REPLACES: self_times
def self_times(spans: pd.DataFrame) -> pd.Series:
    return spans.groupby("service")["duration_ms"].sum().sort_values(ascending=False)
