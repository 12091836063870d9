"""Experiments run on the live lab; each returns a pandas DataFrame of raw observations (one row each)."""

from __future__ import annotations

from ..coroutines import run_async  # noqa: F401 - the one way an experiment runs its coroutine, from anywhere

#: One sample entity per service, read through the gateway by the experiments (the seed always creates them).
PATHS = {"claims": "/api/claims/CLM-000001", "policy": "/api/policies/POL-000001",
         "customer": "/api/customers/CUS-000001"}
