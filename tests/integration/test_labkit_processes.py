"""labkit as a learner meets it: the CLI starts a lab that outlives it, verify passes, stop-all leaves
nothing behind; a lab started from a kernel dies with the kernel; a busy port is named with a fix."""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

import labkit
from labkit import procs, redis_server
from labkit.experiments.resilience import start_private_lab
from services.core.settings import SERVICE_NAMES, Settings


def private_lab_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"LAB_RUN_DIR": str(tmp_path / "run"), "LAB_REDIS_PORT": str(procs.free_port())})
    for name in (*SERVICE_NAMES, "dashboard"):
        env[f"LAB_{name.upper()}_PORT"] = str(procs.free_port())
    return env


def labkit_cli(env, *args, timeout=300):  # generous: seen to need over a minute on a crowded machine
    return subprocess.run([sys.executable, "-m", "labkit", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def stop_whatever_is_left(env) -> None:
    """The backstop of a test that started a lab through the CLI: whatever the CLI did, nothing survives."""
    labkit.stop_all(Settings(_env_file=None, run_dir=env["LAB_RUN_DIR"]))


def ports_of(env) -> list[int]:
    return [int(env["LAB_REDIS_PORT"])] + [int(env[f"LAB_{n.upper()}_PORT"]) for n in (*SERVICE_NAMES, "dashboard")]


def wait_until_free(ports, seconds=60.0) -> list[int]:
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
        stop_whatever_is_left(env)
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
        [sys.executable, "-c", "import labkit, time; labkit.start_all(timeout=120); print('up', flush=True); time.sleep(300)"],
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


def taken_port() -> tuple[socket.socket, int]:
    """A port bound but not listening, as an outgoing connection holds its local port: a connect() check
    sees it free, a server's bind() fails with "address already in use"."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", procs.free_port()))
    return holder, holder.getsockname()[1]


def new_children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True) if procs.is_alive(child.pid)}


def test_a_start_that_fails_part_way_stops_everything_it_started(tmp_path):
    """Fixed ports, the last service's taken after the check: Redis and four services start, the worker
    cannot bind. From Python, start_all stops what it started and names the port."""
    holder, busy = taken_port()
    before = new_children()
    try:
        settings = Settings(_env_file=None, redis_url=None, run_dir=tmp_path, redis_port=procs.free_port(),
                            **{f"{name}_port": procs.free_port() for name in SERVICE_NAMES if name != "worker"},
                            worker_port=busy)
        with pytest.raises(labkit.PortBusyError) as error:
            labkit.start_all(settings, timeout=120)
        message = str(error.value)
        assert f"Port {busy}" in message and "LAB_WORKER_PORT=" in message
        assert "Stopped what this call had started: redis, customer, policy, claims, gateway, worker" in message
        assert new_children() - before == set(), "a process of the failed start is still alive"
        assert not procs.read_pidfiles(tmp_path) and redis_server.current(settings) is None
    finally:
        holder.close()
        labkit.stop_all(settings)


def test_a_cli_start_that_fails_part_way_says_what_it_left_running(tmp_path):
    holder, busy = taken_port()
    env = private_lab_env(tmp_path) | {"LAB_WORKER_PORT": str(busy)}
    try:
        result = labkit_cli(env, "start-all")
        assert result.returncode == 2
        assert f"Port {busy}" in result.stderr and "LAB_WORKER_PORT=" in result.stderr
        left = {name: record.pid for name, record in procs.read_pidfiles(tmp_path / "run").items()}
        assert "This start-all left running: redis (pid " in result.stderr and "`labkit stop-all`" in result.stderr
        for name, pid in left.items():
            if name != "worker":
                assert f"{name} (pid {pid})" in result.stderr
    finally:
        holder.close()
        labkit_cli(env, "stop-all")
        stop_whatever_is_left(env)
    assert wait_until_free([p for p in ports_of(env) if p != busy]) == []


def test_a_private_lab_whose_port_is_taken_before_the_bind_starts_on_other_ports(tmp_path, monkeypatch):
    """The race of a fresh-clone `make test`: a port found free is taken before the server binds it."""
    holder, busy = taken_port()
    real_free_port, handed = procs.free_port, []

    def first_the_taken_one(host="127.0.0.1"):
        handed.append(busy if not handed else real_free_port(host))
        return handed[-1]
    monkeypatch.setattr(procs, "free_port", first_the_taken_one)
    lab = None
    try:
        lab = start_private_lab(tmp_path, timeout=120)
        assert lab.healthy and busy not in [lab.settings.port_of(name) for name in SERVICE_NAMES]
    finally:
        holder.close()
        labkit.stop_all(lab.settings if lab else Settings(_env_file=None, run_dir=tmp_path))
    assert len(handed) > len(SERVICE_NAMES) + 1, "the first pick of ports was not retried"


def test_scale_starts_an_instance_on_another_port_when_its_port_is_taken(settings, monkeypatch):
    holder, busy = taken_port()
    real_free_port, handed = procs.free_port, []

    def first_the_taken_one(host="127.0.0.1"):
        handed.append(busy if not handed else real_free_port(host))
        return handed[-1]
    monkeypatch.setattr(procs, "free_port", first_the_taken_one)
    try:
        lab = labkit.scale("policy", 2, settings, timeout=120)
        extra = next(s for s in lab.services if s.name == "policy#2")
        assert extra.status == "healthy" and not extra.url.endswith(f":{busy}")
    finally:
        holder.close()
        labkit.scale("policy", 1, settings)


def test_lab_ports_are_outside_the_kernels_ephemeral_range():
    low, high = procs.ephemeral_port_range()
    ports = [procs.free_port() for _ in range(50)]
    assert not [p for p in ports if low <= p <= high]
    assert len(set(ports)) == 50, "one process never hands out the same port twice"
