"""Experiments run on the live lab; each returns a pandas DataFrame of raw observations (one row each)."""

from __future__ import annotations

import asyncio
import concurrent.futures


#: One sample entity per service, read through the gateway by the experiments (the seed always creates them).
PATHS = {"claims": "/api/claims/CLM-000001", "policy": "/api/policies/POL-000001",
         "customer": "/api/customers/CUS-000001"}


def run_async(coro):
    """Run a coroutine to completion from anywhere — a script, or a notebook whose event loop is running.

    Jupyter runs its own event loop in the kernel's thread, so ``asyncio.run`` would refuse there; a
    short-lived worker thread gets a loop of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
