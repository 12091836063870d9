"""The typed app state and the one owner of an app's background tasks (issue 14, item 3)."""

import asyncio

import pytest

from services.core.settings import Settings
from services.platform.knobs import Knobs
from services.platform.state import AppState
from services.platform.tasks import BackgroundTasks


def test_stop_all_cancels_every_task_and_waits_for_each_to_finish():
    finished: list[str] = []

    async def forever(name: str):
        try:
            await asyncio.Event().wait()
        finally:
            finished.append(name)  # runs only once the task is cancelled

    async def main():
        tasks = BackgroundTasks()
        started = [tasks.start(name, forever(name)) for name in ("heartbeat", "relay", "subscriber")]
        await asyncio.sleep(0)
        await tasks.stop_all()
        return started, tasks.running
    started, running = asyncio.run(main())
    assert sorted(finished) == ["heartbeat", "relay", "subscriber"]
    assert all(task.cancelled() for task in started) and running == {}


def test_a_task_name_runs_once_and_one_task_can_be_stopped_alone():
    async def main():
        tasks = BackgroundTasks()
        tasks.start("heartbeat", asyncio.sleep(60))
        with pytest.raises(RuntimeError, match="already running"):
            tasks.start("heartbeat", asyncio.sleep(60))
        other = tasks.start("relay", asyncio.sleep(60))
        await tasks.stop("heartbeat")
        left = set(tasks.running)
        await tasks.stop_all()
        return left, other.cancelled()
    left, relay_cancelled = asyncio.run(main())
    assert left == {"relay"} and relay_cancelled


def test_app_state_is_typed_an_undeclared_attribute_is_refused():
    state = AppState(service="policy", settings=Settings(), instance_id="policy-1", port=1, started_at=0.0,
                     knobs=Knobs())
    assert state.db is None and state.redis is None and isinstance(state.tasks, BackgroundTasks)
    with pytest.raises(AttributeError):
        state.databse = object()  # a typo cannot create a second, untyped attribute
