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
            await cancel_and_wait([task])

    async def stop_all(self) -> None:
        """Cancel every task, newest first, and wait until all of them have finished."""
        tasks = list(reversed(self.running.values()))
        self.running.clear()
        for result in await cancel_and_wait(tasks):
            if isinstance(result, Exception):
                log.warning("a background task had failed: %r", result)


async def cancel_and_wait(tasks: list[asyncio.Task], every_s: float = 0.5) -> list:
    """Cancel the tasks and wait until each has finished; cancel again any still running every ``every_s``.

    Once is not always enough: a client library can swallow a cancellation that lands at the wrong moment
    (seen here: redis-py's ``PubSub.get_message(timeout=...)`` in the gateway's registry subscriber, which
    then kept the process alive after SIGTERM). Returns each task's result or exception.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
    return await asyncio.gather(*tasks, return_exceptions=True)
