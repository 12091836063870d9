"""Run a coroutine to completion from anywhere: a script, the CLI, or a notebook whose event loop is running.

Jupyter runs its own event loop in the kernel's thread, so ``asyncio.run`` refuses there; a short-lived
worker thread gets a loop of its own. Every experiment and ``labkit load`` goes through ``run_async``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

try:  # uvicorn[standard] brings uvloop on Linux and macOS: a cheaper loop for the load generator's thousands of requests
    import uvloop

    _LOOP_FACTORY = uvloop.new_event_loop
except ImportError:  # pragma: no cover - Windows, or a venv without it
    _LOOP_FACTORY = None


def run_async(coro):
    """Run ``coro`` on a fresh event loop (uvloop when installed) and return its result."""

    def run():
        with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
            return runner.run(coro)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()
