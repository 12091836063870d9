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

_started = {}


def pytest_sessionstart(session):
    if os.environ.get("LAB_TEST_SESSION"):  # a nested pytest (labkit grade): the outer session owns the lab
        return
    run_dir = tempfile.mkdtemp(prefix="lab-test-")
    os.environ.update({
        "LAB_TEST_SESSION": "1",
        "LAB_RUN_DIR": run_dir,
        "LAB_REDIS_PORT": str(procs.free_port()),
        "LAB_GATEWAY_PORT": str(procs.free_port()),
        "LAB_POLICY_PORT": str(procs.free_port()),
        "LAB_CLAIMS_PORT": str(procs.free_port()),
        "LAB_CUSTOMER_PORT": str(procs.free_port()),
        "LAB_WORKER_PORT": str(procs.free_port()),
        "LAB_DASHBOARD_PORT": str(procs.free_port()),
        "LAB_SOR_LATENCY_MS": "0",
        "LAB_LOG_LEVEL": "INFO",
    })
    import labkit

    _started["lab"] = labkit.start_all(detached=False, timeout=120)  # generous: 2 cores may be shared
    _started["run_dir"] = run_dir
    from labkit.seed import seed

    seed()  # the deterministic sample data: CUS-000001 is alice's record, CUS-000002 bob's


def pytest_sessionfinish(session, exitstatus):
    lab = _started.pop("lab", None)
    if lab is not None:
        lab.stop()
        shutil.rmtree(_started.pop("run_dir"), ignore_errors=True)
