"""One collection loop shared by every open page.

Each page that opens ``GET /events`` gets a small queue; the loop collects one snapshot per second,
serializes it once and puts the same text in every queue. The loop (and the pub/sub listener for the
last events) runs only while at least one page is open: the first subscriber starts it, the last one to
leave stops it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager

from .collect import Collector

log = logging.getLogger("lab.dashboard")

TICK_S = 1.0
COLLECT_TIMEOUT_S = 5.0


class Hub:
    def __init__(self, collector: Collector, tick_s: float = TICK_S):
        self.collector, self.tick_s = collector, tick_s
        self.queues: set[asyncio.Queue] = set()
        self.tasks: list[asyncio.Task] = []
        self.latest: str | None = None  # the last snapshot as JSON: a page that just opened gets it at once
        collector.on_new_event = lambda event: self.publish("lab-event", json.dumps(event))

    @asynccontextmanager
    async def subscribe(self):
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        if self.latest is not None:
            queue.put_nowait(("snapshot", self.latest))
        self.queues.add(queue)
        if not self.tasks:
            self.tasks = [asyncio.create_task(self._loop(), name="dashboard-collect"), self.collector.listen()]
        try:
            yield queue
        finally:
            self.queues.discard(queue)
            if not self.queues:
                await self.stop()

    async def stop(self) -> None:
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def publish(self, kind: str, text: str) -> None:
        """Put one message in every page's queue; a page that fell behind loses its oldest message."""
        for queue in self.queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((kind, text))

    async def snapshot(self) -> dict:
        """One snapshot now (``GET /snapshot``: for curl, the tests and the benchmark)."""
        return await asyncio.wait_for(self.collector.collect(), COLLECT_TIMEOUT_S)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                snapshot = await asyncio.wait_for(self.collector.collect(), COLLECT_TIMEOUT_S)
            except asyncio.TimeoutError:
                snapshot = {"errors": [f"collecting took longer than {COLLECT_TIMEOUT_S:g} s"]}
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one bad tick
                log.exception("dashboard: collecting a snapshot failed")
                snapshot = {"errors": [f"collecting failed: {type(exc).__name__}"]}
            self.latest = json.dumps(snapshot, separators=(",", ":"))
            self.publish("snapshot", self.latest)
            await asyncio.sleep(max(0.05, self.tick_s - (loop.time() - started)))
