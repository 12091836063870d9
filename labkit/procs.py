"""Start one process, wait for it to be healthy, stop it; pidfiles; who holds a port.

Two ways to start, because a notebook and a terminal want different things:

* from a notebook (``detached=False``) the child stays in the kernel's process group, so when nbval or
  Jupyter SIGKILLs the kernel's group the services die with it — nothing is left behind;
* from the CLI (``detached=True``) the child gets its own session and outlives the ``labkit`` command;
  its pidfile is how ``labkit stop-all`` finds it again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from services.core.settings import PROJECT_ROOT

from .errors import ServiceFailedError


@dataclass
class ProcRecord:
    name: str
    pid: int
    port: int
    url: str
    log: str
    started_at: float
    argv: list[str]


def make_private(run_dir: Path) -> None:
    """The run directory holds the admin password (redis.json), the master secret and the SQLite files
    (names, emails, birth dates): 0700 for it and every directory in it, 0600 for every file, so no other
    OS user on the machine reads any of it. (Files made later are made that way: ``write_private``, and
    the children labkit spawns run with umask 077.)"""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o700)
    for path in run_dir.rglob("*"):
        try:
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)
        except OSError:  # vanished meanwhile (a process removed its pidfile): nothing to protect
            pass


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read (0600 from the start, not chmod-ed after)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)  # it may have existed before with a wider mode


def pid_dir(run_dir: Path) -> Path:
    path = run_dir / "pids"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_pidfile(run_dir: Path, record: ProcRecord) -> None:
    write_private(pid_dir(run_dir) / f"{record.name}.json", json.dumps(asdict(record), indent=1))


def read_pidfiles(run_dir: Path) -> dict[str, ProcRecord]:
    records = {}
    for path in sorted(pid_dir(run_dir).glob("*.json")):
        try:
            records[path.stem] = ProcRecord(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)
    return records


def remove_pidfile(run_dir: Path, name: str) -> None:
    (pid_dir(run_dir) / f"{name}.json").unlink(missing_ok=True)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def port_holder(port: int) -> str | None:
    """``pid 1234 (python3 -m http.server 3001)`` for whoever listens on ``port``, if we may know."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:80]})"
    except (psutil.Error, OSError):
        return None
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def spawn(name: str, argv: list[str], env: dict[str, str], log_path: Path, detached: bool) -> subprocess.Popen:
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A log may show ids and addresses; 0600 like everything in the run directory. The child runs with
    # umask 077, so what it creates (its SQLite file and journal) is private too.
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=PROJECT_ROOT, start_new_session=detached, umask=0o077)


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "    (no log yet)"
    return "\n".join("    " + line for line in text[-lines:])


def get_health(url: str, timeout: float = 1.0) -> dict | None:
    try:
        response = httpx.get(url + "/health", timeout=timeout)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def wait_healthy(name: str, url: str, proc: subprocess.Popen | None, log_path: Path, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = get_health(url, timeout=0.5)
        if health and health.get("service") == name.split("#")[0]:
            return health
        if proc is not None and proc.poll() is not None:
            raise ServiceFailedError(name, f"it exited with code {proc.returncode}", tail(log_path), log_path)
        time.sleep(0.1)
    raise ServiceFailedError(name, f"no healthy answer from {url}/health within {timeout:.0f} s",
                             tail(log_path), log_path)


def is_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def looks_like_ours(pid: int, marker: str) -> bool:
    """A pidfile may be stale and its pid reused by something else: its command line must show ``marker``."""
    try:
        return marker in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone or a zombie (dead, merely not yet reaped by a parent that isn't us)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM (graceful: deregister, close pools), then SIGKILL if it does not go in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, timeout):
            break
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
    except ChildProcessError:
        pass
