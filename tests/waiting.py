"""The one way the tests wait for something the lab does in the background."""

from __future__ import annotations

import time

import pytest


def wait_for(condition, what: str, deadline_s: float = 20.0, every_s: float = 0.1):
    """Poll ``condition()`` until it returns something truthy (returned), or fail naming ``what``.

    Deadlines are generous: a test says *that* something happens, never how fast.
    """
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    pytest.fail(f"gave up after {deadline_s:.0f} s waiting for {what}")
