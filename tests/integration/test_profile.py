"""``labkit profile``: py-spy samples a real service of the session's lab while traffic runs at it.

Structure only (the files are written, the samples are sorted into layers that add up to 1, the Redis
client and the route are among them): never how the shares compare, which depends on the machine.
"""

import subprocess
import sys
import threading

import pytest

from labkit import profile as profiling
from labkit.errors import LabkitError
from labkit.load import run_load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _profile_under_traffic(name: str, seconds: float = 2.0):
    """Closed-loop reads straight to the policy service for longer than the sampling, in a thread."""
    load = threading.Thread(target=run_load, kwargs=dict(mode="closed", concurrency=4, duration=seconds + 2,
                                                          mix={"read_policy": 1}, target="policy",
                                                          progress=False, save=False))
    load.start()
    try:
        return profiling.profile(name, seconds=seconds)
    except LabkitError as exc:
        if "ptrace" in str(exc):  # a container without CAP_SYS_PTRACE: the kernel forbids any profiler
            pytest.skip(f"this machine does not let a process read another's memory: {exc}")
        raise
    finally:
        load.join()


def test_profile_of_a_busy_service_writes_a_flame_graph_and_layer_shares(lab):
    result = _profile_under_traffic("policy")
    assert result.flame_graph.read_bytes()[:8] == PNG_MAGIC
    shares = result.shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(shares) <= set(profiling.LAYERS) | {profiling.OTHER}
    # A read answered from Redis spends some of its time in the Redis client and in the framework.
    assert shares.get("Redis client", 0) > 0
    assert shares.get("framework (FastAPI, Starlette)", 0) > 0
    collapsed = result.stacks.read_text()
    assert "services/policy/routes.py" in collapsed  # the route itself was caught on the CPU


def test_profile_names_a_service_that_is_not_running(lab):
    with pytest.raises(LabkitError, match="no running service named 'policy#9'.*labkit status"):
        profiling.profile("policy#9", seconds=1)


def _cli_profile(name: str, seconds: float = 1):
    return subprocess.run([sys.executable, "-m", "labkit", "profile", name, "--seconds", f"{seconds:g}"],
                          capture_output=True, text=True, timeout=120)


def test_the_cli_prints_the_layers_and_the_files(lab):
    load = threading.Thread(target=run_load, kwargs=dict(mode="closed", concurrency=4, duration=4,
                                                          mix={"read_customer": 1}, target="customer",
                                                          progress=False, save=False))
    load.start()
    try:
        done = _cli_profile("customer", seconds=2)
    finally:
        load.join()
    if "ptrace" in done.stderr:
        pytest.skip("this machine does not let a process read another's memory")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "share of samples" in done.stdout.lower() and "flame graph:" in done.stdout
