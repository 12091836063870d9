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
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from services.core.settings import PROJECT_ROOT

from .errors import PortBusyError, ServiceFailedError


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


# Ports the lab picks for itself (test labs, private labs, extra instances) come from below the kernel's
# ephemeral range: every outgoing connection takes its local port from that range, so a port found free
# there can be taken by some client's connect() before our server binds it ([Errno 98] address in use).
LAB_PORT_RANGE = (20000, 32767)
DEFAULT_EPHEMERAL_RANGE = (49152, 65535)  # IANA's, macOS's and Windows' default, when the OS will not say
_handed_out: set[int] = set()  # picked by this process but perhaps not bound yet: never pick them twice


def ephemeral_port_range() -> tuple[int, int]:
    """The range the kernel draws outgoing connections' local ports from (Linux: 32768-60999 by default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        pass
    try:  # macOS and the BSDs
        found = subprocess.run(["sysctl", "-n", "net.inet.ip.portrange.first", "net.inet.ip.portrange.last"],
                               capture_output=True, text=True, timeout=2).stdout.split()
        return int(found[0]), int(found[1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return DEFAULT_EPHEMERAL_RANGE


def lab_port_candidates() -> list[int]:
    """``LAB_PORT_RANGE`` minus the ephemeral range (or, if a machine's ephemeral range swallows it, every
    unprivileged port outside the ephemeral range)."""
    low, high = ephemeral_port_range()
    outside = [p for p in range(*LAB_PORT_RANGE) if not low <= p <= high]
    return outside or [p for p in range(1024, 65536) if not low <= p <= high]


def can_bind(host: str, port: int) -> bool:
    """Whether a server could bind ``port`` now: nobody listens on it and no connection holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port for a server the lab starts itself, outside the ephemeral range and free right now.

    Random rather than the lowest free one, so two test sessions on one machine rarely pick the same port.
    "Free now" is no promise (another program may bind it first): whoever starts a server on it must be
    ready to retry on another port when the bind fails (see ``bind_failed``).
    """
    candidates = lab_port_candidates()
    for port in random.sample(candidates, min(len(candidates), 200)):
        if port not in _handed_out and can_bind(host, port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded machine: let the kernel pick
        sock.bind((host, 0))
        return sock.getsockname()[1]


# What a server writes when its port is taken: uvicorn "[Errno 98] ... address already in use",
# Valkey/Redis "bind: Address already in use", macOS "[Errno 48] Address already in use".
_BIND_FAILED = ("address already in use", "errno 98", "errno 48")


def bind_failed(log_path: Path) -> bool:
    """Whether the latest start written to ``log_path`` (see ``spawn``) failed because its port was taken."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return False
    starts = [match.end() for match in _START_LINE.finditer(text)]
    latest = text[starts[-1] if starts else 0:].lower()
    return any(sign in latest for sign in _BIND_FAILED)


_START_LINE = re.compile(r"^--- \d{4}-\d\d-\d\d \d\d:\d\d:\d\d starting .*$", re.MULTILINE)  # spawn writes it


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
    return wait_all_healthy({name: (proc, url, log_path)}, timeout)[name]


def wait_all_healthy(started: dict[str, tuple[subprocess.Popen | None, str, Path]], timeout: float = 30.0) -> dict:
    """Wait for processes started together (``{name: (process, url, log)}``); ``{name: health}``.

    All at once: the first one that exits fails the lot right away, rather than after the others' waits.
    One whose port was taken before it could bind raises PortBusyError, so a caller that picked the port
    can try another.
    """
    deadline = time.monotonic() + timeout
    pending, healthy = dict(started), {}
    while pending:
        for name, (proc, url, log_path) in list(pending.items()):
            health = get_health(url, timeout=0.5)
            if health and health.get("service") == name.split("#")[0]:
                healthy[name] = health
                del pending[name]
            elif proc is not None and proc.poll() is not None:
                port = urlsplit(url).port
                if port and bind_failed(log_path):  # taken between our check and its bind: callers may retry
                    env_var = None if "#" in name else f"LAB_{name.upper()}_PORT"
                    raise PortBusyError(port, f"the {name} service", port_holder(port), env_var)
                raise ServiceFailedError(name, f"it exited with code {proc.returncode}", tail(log_path), log_path)
        if pending and time.monotonic() > deadline:
            name, (_, url, log_path) = next(iter(pending.items()))
            raise ServiceFailedError(name, f"no healthy answer from {url}/health within {timeout:.0f} s",
                                     tail(log_path), log_path)
        if pending:
            time.sleep(0.1)
    return healthy


def spawn_service(service: str, port: int, env: dict[str, str], log_path: Path, *, name: str | None = None,
                  detached: bool = False) -> subprocess.Popen:
    """``python -m services.run SERVICE --port PORT`` with exactly ``env``, its output appended to ``log_path``;
    not waited for. The one place a service process is started (``start_all``, ``scale``, ``start_service``).
    ``proc.args`` is the command line, for its pidfile."""
    argv = [sys.executable, "-m", "services.run", service, "--port", str(port)]
    return spawn(name or service, argv, env, log_path, detached)


def start_service(service: str, log_path: Path, overrides: dict[str, str] | None = None, *, port: int | None = None,
                  name: str | None = None, attempts: int = 3, timeout: float = 120.0) -> tuple[subprocess.Popen, int]:
    """One more ``service`` process beside the lab (a test's, a lesson's, a benchmark's), healthy: this
    process's environment with ``overrides`` (e.g. ``REDIS_URL``, ``LAB_RUN_DIR``, a setting under test), on
    ``port`` or one picked now.

    Returns ``(process, port)``; it dies with this process's group. If a port picked here is taken before the
    service binds it, it starts again on another; any other failure stops it before raising. The timeout
    is generous: on a machine shared by many test runs a service has needed over a minute to import.
    """
    for _ in range(attempts - 1 if port is None else 0):
        try:
            return _start_service_once(service, log_path, overrides or {}, free_port(), name, timeout)
        except PortBusyError:
            pass
    return _start_service_once(service, log_path, overrides or {}, port or free_port(), name, timeout)


def _start_service_once(service: str, log_path: Path, overrides: dict[str, str], port: int, name: str | None,
                        timeout: float) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ) | overrides | {f"LAB_{service.upper()}_PORT": str(port)}
    proc = spawn_service(service, port, env, log_path, name=name)
    try:
        wait_healthy(service, f"http://127.0.0.1:{port}", proc, log_path, timeout)
        return proc, port
    except BaseException:
        stop_pid(proc.pid)  # already gone after a failed bind; stopped after anything else
        raise


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
