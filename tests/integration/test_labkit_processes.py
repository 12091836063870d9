"""labkit as a learner meets it: the CLI starts a lab that outlives it, verify passes, stop-all leaves
nothing behind; a lab started from a kernel dies with the kernel; a busy port is named with a fix."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import labkit
from labkit import procs
from services.core.settings import SERVICE_NAMES, Settings


def private_lab_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"LAB_RUN_DIR": str(tmp_path / "run"), "LAB_REDIS_PORT": str(procs.free_port())})
    for name in (*SERVICE_NAMES, "dashboard"):
        env[f"LAB_{name.upper()}_PORT"] = str(procs.free_port())
    return env


def labkit_cli(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "labkit", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def ports_of(env) -> list[int]:
    return [int(env["LAB_REDIS_PORT"])] + [int(env[f"LAB_{n.upper()}_PORT"]) for n in (*SERVICE_NAMES, "dashboard")]


def wait_until_free(ports, seconds=10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy = [p for p in ports if procs.port_in_use("127.0.0.1", p)]
        if not busy:
            return []
        time.sleep(0.1)
    return busy


def test_cli_lab_outlives_the_command_verifies_and_stops_cleanly(tmp_path):
    env = private_lab_env(tmp_path)
    started = labkit_cli(env, "start-all")
    assert started.returncode == 0, started.stderr
    assert "healthy" in started.stdout and "valkey" in started.stdout.lower()
    try:
        again = labkit_cli(env, "start-all")  # idempotent: reuses, starts nothing new
        assert again.returncode == 0
        pids = sorted(r.pid for r in procs.read_pidfiles(tmp_path / "run").values())
        assert len(pids) == len(SERVICE_NAMES) + 1  # the services and the dashboard
        status = labkit_cli(env, "status")
        assert status.returncode == 0 and status.stdout.count("healthy") == len(SERVICE_NAMES) + 2  # + redis
        verified = labkit_cli(env, "verify")
        assert verified.returncode == 0, verified.stdout
        assert "0 failed" in verified.stdout
    finally:
        stopped = labkit_cli(env, "stop-all")
    assert stopped.returncode == 0
    assert wait_until_free(ports_of(env)) == []
    assert not list((tmp_path / "run" / "pids").glob("*.json"))
    assert not any(procs.is_alive(pid) for pid in pids)


def test_verify_fails_with_a_fix_hint_when_nothing_runs(tmp_path):
    result = labkit_cli(private_lab_env(tmp_path), "verify")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "labkit start-all" in result.stdout


def test_lab_started_from_a_kernel_dies_with_the_kernels_process_group(tmp_path):
    """nbval ends a notebook by SIGKILLing the kernel's process group; nothing may survive it."""
    env = private_lab_env(tmp_path)
    kernel = subprocess.Popen(
        [sys.executable, "-c", "import labkit, time; labkit.start_all(); print('up', flush=True); time.sleep(120)"],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert kernel.stdout.readline().strip() == "up"
        assert not wait_until_free(ports_of(env), seconds=0.1) == []
    finally:
        os.killpg(kernel.pid, signal.SIGKILL)
        kernel.wait()
    assert wait_until_free(ports_of(env)) == []


def test_busy_port_is_named_with_its_holder_and_a_way_out(tmp_path, redis_url):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        settings = Settings(_env_file=None, redis_url=redis_url, run_dir=tmp_path, gateway_port=busy,
                            policy_port=procs.free_port(), claims_port=procs.free_port(),
                            customer_port=procs.free_port())
        with pytest.raises(labkit.PortBusyError) as error:
            labkit.start_all(settings)
        message = str(error.value)
        assert f"Port {busy}" in message and "LAB_GATEWAY_PORT=" in message
        assert f"pid {os.getpid()}" in message  # the holder is named
        assert not procs.read_pidfiles(tmp_path), "nothing may be started when a port is busy"
    finally:
        holder.close()


def test_redis_url_pointing_nowhere_is_explained(tmp_path):
    env = private_lab_env(tmp_path) | {"REDIS_URL": f"redis://127.0.0.1:{procs.free_port()}/0"}
    result = labkit_cli(env, "start-all")
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr and "nothing answers" in result.stderr
