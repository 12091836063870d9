"""The one owner of an app's background tasks: started by name, cancelled and awaited together at shutdown.

The heartbeat (lesson 03), the outbox relay and subscribers (lesson 02), the ``event_driven`` invalidation
subscriber (lesson 06), the gateway's registry watchers and answer-cache subscriber, the claims worker's
consumer: each is a coroutine that runs for the app's life. The lifespan holds one ``BackgroundTasks``
(``app.state.tasks``) and stops them all in one place, so no task outlives the Redis pool it uses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Coroutine

log = logging.getLogger("lab.tasks")


class BackgroundTasks:
    """Named asyncio tasks of one app."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task] = {}

    def start(self, name: str, coro: Coroutine) -> asyncio.Task:
        """Run ``coro`` as the task ``name`` (a name is unique in this app: starting it twice is a bug)."""
        if name in self.running and not self.running[name].done():
            coro.close()
            raise RuntimeError(f"background task {name!r} is already running")
        task = asyncio.create_task(coro, name=name)
        self.running[name] = task
        return task

    async def stop(self, name: str) -> None:
        """Cancel one task and wait for it to finish (a no-op if it was never started)."""
        task = self.running.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        """Cancel every task, newest first, and wait until all of them have finished."""
        tasks = list(reversed(self.running.values()))
        self.running.clear()
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("a background task had failed: %r", result)
