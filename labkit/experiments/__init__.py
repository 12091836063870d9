"""Experiments run on the live lab; each returns a pandas DataFrame of raw observations (one row each)."""

from __future__ import annotations

from ..coroutines import run_async  # noqa: F401 - the one way an experiment runs its coroutine, from anywhere

#: One sample entity per service, read through the gateway by the experiments (the seed always creates them).
PATHS = {"claims": "/api/claims/CLM-000001", "policy": "/api/policies/POL-000001",
         "customer": "/api/customers/CUS-000001"}


def load_average() -> float | None:
    """The machine's 1-minute load average now (None where the OS has none): how many processes wanted a
    core. Experiments read it around their rounds, so a verdict can say how busy the machine was while it ran."""
    import os

    try:
        return os.getloadavg()[0]
    except OSError:
        return None
