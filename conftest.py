"""The test session's own lab: Redis, the services and the dashboard on free ports, in a private run directory.

Started once in ``pytest_sessionstart`` (so nbval's notebook items, which use no fixtures, see it too) and
published through the environment: every notebook kernel and every ``labkit`` call in the session then
finds this lab, and ``labkit.start_all()`` in a notebook reuses it. A learner's own lab on the default
ports is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from labkit import procs
from services.core.settings import SERVICE_NAMES

_started = {}


def _pick_ports() -> dict[str, str]:
    return {"LAB_REDIS_PORT": str(procs.free_port())} | {
        f"LAB_{name.upper()}_PORT": str(procs.free_port()) for name in (*SERVICE_NAMES, "dashboard")}


def pytest_sessionstart(session):
    if os.environ.get("LAB_TEST_SESSION"):  # a nested pytest (labkit grade): the outer session owns the lab
        return
    run_dir = tempfile.mkdtemp(prefix="lab-test-")
    _started["run_dir"] = run_dir  # from here on, pytest_sessionfinish cleans up whatever happens
    os.environ.update({"LAB_TEST_SESSION": "1", "LAB_RUN_DIR": run_dir, "LAB_SOR_LATENCY_MS": "0",
                       "LAB_LOG_LEVEL": "INFO",
                       # Every lab a test starts (CLI, private labs, notebooks) inherits this deadline: on a
                       # machine shared by many test runs a service can take a minute to import.
                       "LAB_START_TIMEOUT_S": os.environ.get("LAB_START_TIMEOUT_S", "120")})
    try:
        _start_and_seed()
    except BaseException:
        # pytest calls pytest_sessionfinish only after a *successful* sessionstart: without this, a seed that
        # failed (or a Ctrl-C during start) left the session's Redis and services running, orphaned.
        pytest_sessionfinish(session, 1)
        raise


def _start_and_seed() -> None:
    import labkit

    for attempt in range(1, 4):
        os.environ.update(_pick_ports())
        try:
            _started["lab"] = labkit.start_all(detached=False)
            break
        except labkit.PortBusyError:  # a port was taken between our pick and its server's bind: pick again
            if attempt == 3:  # (start_all has stopped what it had started)
                raise
    from labkit.seed import seed

    seed()  # the deterministic sample data: CUS-000001 is alice's record, CUS-000002 bob's


def pytest_sessionfinish(session, exitstatus):
    run_dir = _started.pop("run_dir", None)
    _started.pop("lab", None)
    if run_dir is not None:  # stop by the run directory: also what a failed start or seed left behind
        import labkit

        labkit.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
