"""Start, inspect and stop the whole lab: the Redis server and the four services.

``start_all()`` is idempotent: whatever already answers healthy on its port is reused, never duplicated,
so a notebook can call it at the top of every lesson. Ports, URLs and the run directory come from
``services.core.settings``; the same settings reach every child process through its environment.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.core.settings import SERVICE_NAMES, Settings, get_settings

from . import auth, procs, redis_server
from .errors import LabkitError, PortBusyError
from .tables import html_table, text_table


@dataclass
class ServiceStatus:
    name: str
    url: str
    status: str  # healthy | degraded | down | stopped
    pid: int | None = None
    version: str | None = None
    instance: str | None = None
    detail: str | None = None  # e.g. the claims worker's consumer-group lag and pending count

    def row(self) -> dict:
        return {"name": self.name, "url": self.url, "pid": self.pid or "-", "status": self.status,
                "version": self.version or "-", "instance": self.instance or "-", "detail": self.detail or "-"}


@dataclass
class Lab:
    """A handle on the running lab; in a notebook it renders as the status table."""

    settings: Settings
    redis: redis_server.RedisServer | None
    services: list[ServiceStatus] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return self.settings.url_of("gateway")

    @property
    def client(self) -> httpx.Client:
        """An HTTP client on the gateway, as the lab's system user: ``lab.client.get("/api/policies/POL-000001")``."""
        if not hasattr(self, "_client"):
            self._client = auth.gateway_client(self.settings)
        return self._client

    def gateway_headers(self, *, ask_the_service: bool = False) -> dict[str, str]:
        """The lab's API key; ``ask_the_service=True`` adds ``Cache-Control: no-cache`` (skip the gateway's cache)."""
        return auth.gateway_headers(self.settings, ask_the_service=ask_the_service)

    def service_headers(self) -> dict[str, str]:
        """A signed identity for calls straight to a service; valid for about a minute."""
        return auth.service_headers(self.settings)

    def service_client(self, service: str) -> httpx.Client:
        """An HTTP client straight to one service (each request signed as the lab's system user)."""
        return auth.service_client(self.settings, service)

    def redis_client(self, **kwargs):
        if self.redis is None:
            raise LabkitError("Redis is not running: call labkit.start_all() first")
        return self.redis.client(**kwargs)

    @property
    def healthy(self) -> bool:
        return self.redis is not None and all(s.status in ("healthy", "degraded") for s in self.services)

    def redis_row(self) -> dict:
        if self.redis is None:
            return {"name": "redis", "url": "-", "pid": "-", "status": "stopped", "version": "-", "instance": "-",
                    "detail": "-"}
        try:
            info = self.redis.info()
            version, status = f"{info['name']} {info['version']}", "healthy"
        except Exception:  # noqa: BLE001 - shown as "down" in the table, not raised
            version, status = "-", "down"
        return {"name": "redis", "url": self.redis.display_url, "pid": self.redis.pid or "-", "status": status,
                "version": version, "instance": self.redis.source, "detail": "-"}

    def rows(self) -> list[dict]:
        return [self.redis_row()] + [s.row() for s in self.services]

    def __repr__(self) -> str:
        return text_table(self.rows())

    def _repr_html_(self) -> str:
        return html_table(self.rows(), caption="redis-insurance-lab")

    def stop(self) -> None:
        stop_all(self.settings)


def settings_env(settings: Settings, redis_url: str, managed_acl: bool = False) -> dict[str, str]:
    """The environment every child gets: ours, plus every setting spelled out, plus REDIS_URL."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if name != "redis_url" and value is not None:
            env[f"LAB_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    env["REDIS_URL"] = redis_url
    if managed_acl:  # labkit made the users on its own server; behind REDIS_URL, LAB_REDIS_ACL says
        env["LAB_REDIS_ACL"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _consumer_detail(health: dict) -> str | None:
    """``lag 0, pending 2`` for a process that reads a stream through a consumer group (the claims worker)."""
    consumer = health.get("consumer")
    if not consumer:
        return None
    return f"lag {consumer.get('lag')}, pending {consumer.get('pending')}, dead-lettered {consumer.get('dead_lettered')}"


def _service_status(settings: Settings, name: str, records: dict[str, procs.ProcRecord]) -> ServiceStatus:
    url = settings.url_of(name)
    health = procs.get_health(url)
    record = records.get(name)
    if health and health.get("service") == name:
        return ServiceStatus(name, url, "healthy" if health["status"] == "ok" else "degraded",
                             health.get("pid"), health.get("version"), health.get("instance"),
                             _consumer_detail(health))
    if record and procs.is_alive(record.pid):
        return ServiceStatus(name, url, "down", record.pid)
    return ServiceStatus(name, url, "stopped")


def start_all(settings: Settings | None = None, *, detached: bool | None = None, timeout: float = 30.0) -> Lab:
    """Bring Redis and every service up (reusing what already runs) and return the Lab handle.

    ``detached`` (default: False in Python, True from the CLI) decides whether the processes outlive
    this one. From a notebook they must not: they die with the kernel.
    """
    settings = settings or get_settings()
    detached = bool(detached)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.shared_secret()  # made once, before any service reads it
    # Check every port before starting anything, so a busy port never leaves half a lab running.
    to_start = []
    for name in SERVICE_NAMES:
        health = procs.get_health(settings.url_of(name))
        if health and health.get("service") == name:
            continue  # already up: reuse it
        port = settings.port_of(name)
        if procs.port_in_use(settings.host, port):
            raise PortBusyError(port, f"the {name} service", procs.port_holder(port), f"LAB_{name.upper()}_PORT")
        to_start.append(name)

    server = redis_server.ensure(settings, detached)
    env = settings_env(settings, server.url, managed_acl=server.managed)
    started: dict[str, tuple] = {}
    for name in to_start:
        url, port = settings.url_of(name), settings.port_of(name)
        argv = [sys.executable, "-m", "services.run", name, "--port", str(port)]
        log_path = settings.run_dir / "logs" / f"{name}.log"
        proc = procs.spawn(name, argv, env, log_path, detached)
        procs.write_pidfile(settings.run_dir, procs.ProcRecord(name, proc.pid, port, url, str(log_path),
                                                               time.time(), argv))
        started[name] = (proc, url, log_path)

    for name, (proc, url, log_path) in started.items():
        procs.wait_healthy(name, url, proc, log_path, timeout=timeout)
    return status(settings, server)


def status(settings: Settings | None = None, server: redis_server.RedisServer | None = None) -> Lab:
    settings = settings or get_settings()
    server = server or redis_server.current(settings)
    records = procs.read_pidfiles(settings.run_dir)
    services = []
    for name in SERVICE_NAMES:
        services.append(_service_status(settings, name, records))
        services += [_instance_status(records[extra]) for extra in _extra_instances(records, name)]
    return Lab(settings, server, services)


# --- lesson 03: more than one instance of a service ----------------------------------------------------
# The first instance of a service is its plain name on its settings port (``claims``); extra instances are
# ``claims#2``, ``claims#3`` ... on free ports, each with its own pidfile, log and registration in Redis.

def _extra_instances(records: dict[str, procs.ProcRecord], service: str) -> list[str]:
    """Pidfile names ``service#k``, sorted by k."""
    found = [name for name in records if name.split("#")[0] == service and "#" in name]
    return sorted(found, key=lambda name: int(name.split("#")[1]))


def _instance_status(record: procs.ProcRecord) -> ServiceStatus:
    health = procs.get_health(record.url)
    if health and health.get("service") == record.name.split("#")[0]:
        return ServiceStatus(record.name, record.url, "healthy" if health["status"] == "ok" else "degraded",
                             health.get("pid"), health.get("version"), health.get("instance"))
    return ServiceStatus(record.name, record.url, "down" if procs.is_alive(record.pid) else "stopped", record.pid)


def _spawn_instance(settings: Settings, env: dict, name: str, port: int, detached: bool):
    url = f"http://{settings.advertised_host}:{port}"
    argv = [sys.executable, "-m", "services.run", name.split("#")[0], "--port", str(port)]
    log_path = settings.run_dir / "logs" / f"{name}.log"
    proc = procs.spawn(name, argv, env, log_path, detached)
    procs.write_pidfile(settings.run_dir, procs.ProcRecord(name, proc.pid, port, url, str(log_path), time.time(),
                                                           argv))
    return proc, url, log_path


def scale(name: str, n: int, settings: Settings | None = None, *, detached: bool | None = None,
          weights: dict[int, int] | None = None, timeout: float = 30.0) -> Lab:
    """Run exactly ``n`` instances of service ``name``: start ``name#2``.. on free ports, or stop the extra ones
    (gracefully: they deregister). A dead extra instance (SIGKILLed) is started again on its old port.
    ``weights`` ({2: 3}) gives instance #k a weight for the gateway's weighted strategy.
    """
    settings = settings or get_settings()
    if name not in SERVICE_NAMES:
        raise LabkitError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}")
    if n < 1:
        raise LabkitError("n must be at least 1 (the first instance is managed by start-all/stop-all)")
    server = redis_server.current(settings)
    if server is None:
        raise LabkitError("the lab is not running: `labkit start-all` (or labkit.start_all()) first")
    records = procs.read_pidfiles(settings.run_dir)
    for extra in _extra_instances(records, name):
        if int(extra.split("#")[1]) > n:
            record = records[extra]
            if procs.is_alive(record.pid) and procs.looks_like_ours(record.pid, "services."):
                procs.stop_pid(record.pid)
            procs.remove_pidfile(settings.run_dir, extra)
    started = {}
    for k in range(2, n + 1):
        extra = f"{name}#{k}"
        record = records.get(extra)
        if record and procs.is_alive(record.pid):
            continue
        port = record.port if record and not procs.port_in_use(settings.host, record.port) else procs.free_port()
        env = settings_env(settings, server.url, managed_acl=server.managed)
        if weights and k in weights:
            env["LAB_INSTANCE_WEIGHT"] = str(weights[k])
        started[extra] = _spawn_instance(settings, env, extra, port, bool(detached))
    for extra, (proc, url, log_path) in started.items():
        procs.wait_healthy(extra, url, proc, log_path, timeout=timeout)
    return status(settings, server)


def kill_instance(name: str, settings: Settings | None = None) -> int:
    """SIGKILL one instance (``claims`` or ``claims#2``): no graceful shutdown, no deregistration — its
    registration just stops being renewed. Returns the pid. The pidfile stays, so ``scale`` (or
    ``restart_instance``) starts it again on the same port."""
    settings = settings or get_settings()
    record = procs.read_pidfiles(settings.run_dir).get(name)
    if record is None or not procs.is_alive(record.pid) or not procs.looks_like_ours(record.pid, "services."):
        raise LabkitError(f"no running instance named {name!r}; see `labkit status`")
    os.kill(record.pid, signal.SIGKILL)
    procs.stop_pid(record.pid, timeout=2)  # already dead: this only waits for it and reaps it
    return record.pid


def restart_instance(name: str, settings: Settings | None = None, *, detached: bool | None = None) -> Lab:
    """Start a stopped or killed instance again: ``claims#2`` on its old port, ``claims`` via ``restart``."""
    settings = settings or get_settings()
    if "#" not in name:
        return restart(name, settings)
    record = procs.read_pidfiles(settings.run_dir).get(name)
    if record is None:
        raise LabkitError(f"no instance named {name!r} was ever started; use scale()")
    if procs.is_alive(record.pid):
        procs.stop_pid(record.pid)
    server = redis_server.current(settings)
    if server is None:
        raise LabkitError("the lab is not running: `labkit start-all` first")
    env = settings_env(settings, server.url, managed_acl=server.managed)
    proc, url, log_path = _spawn_instance(settings, env, name, record.port, bool(detached))
    procs.wait_healthy(name, url, proc, log_path)
    return status(settings, server)


def stop_all(settings: Settings | None = None) -> list[str]:
    """Stop every process labkit started (JupyterLab, services, extra instances, then Redis). Returns names."""
    settings = settings or get_settings()
    stopped = []
    for name, record in procs.read_pidfiles(settings.run_dir).items():
        if procs.is_alive(record.pid) and procs.looks_like_ours(record.pid, _marker(name)):
            procs.stop_pid(record.pid)
            stopped.append(name)
        procs.remove_pidfile(settings.run_dir, name)
    if redis_server.stop(settings):
        stopped.append("redis")
    return stopped


def restart(name: str, settings: Settings | None = None) -> Lab:
    settings = settings or get_settings()
    if name not in SERVICE_NAMES:
        raise LabkitError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}")
    record = procs.read_pidfiles(settings.run_dir).get(name)
    if record and procs.is_alive(record.pid):
        procs.stop_pid(record.pid)
    procs.remove_pidfile(settings.run_dir, name)
    deadline = time.monotonic() + 5
    while procs.port_in_use(settings.host, settings.port_of(name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Detached, wherever it is called from: the new process replaces one that belongs to the lab, not to
    # this caller — a service restarted from a notebook must not die with that notebook's kernel.
    return start_all(settings, detached=True)


def logs(name: str, lines: int = 50, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    path: Path = settings.run_dir / "logs" / f"{name}.log"
    if not path.exists():
        known = sorted(p.stem for p in (settings.run_dir / "logs").glob("*.log"))
        raise LabkitError(f"no log for {name!r} in {path.parent}; known: {', '.join(known) or 'none yet'}")
    return procs.tail(path, lines)


# --- one process at a time (``labkit start NAME`` / ``labkit stop NAME``) -------------------------------

def start_one(name: str, settings: Settings | None = None) -> Lab:
    """Start Redis, or one service (and Redis, which every service needs), leaving the others as they are."""
    settings = settings or get_settings()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    if name == "redis":
        return status(settings, redis_server.ensure(settings, detached=True))
    if name not in SERVICE_NAMES:
        raise LabkitError(f"unknown name {name!r}; choose redis or one of {', '.join(SERVICE_NAMES)}")
    url, port = settings.url_of(name), settings.port_of(name)
    health = procs.get_health(url)
    if health and health.get("service") == name:
        return status(settings)  # already up
    if procs.port_in_use(settings.host, port):
        raise PortBusyError(port, f"the {name} service", procs.port_holder(port), f"LAB_{name.upper()}_PORT")
    settings.shared_secret()
    server = redis_server.ensure(settings, detached=True)
    env = settings_env(settings, server.url, managed_acl=server.managed)
    argv = [sys.executable, "-m", "services.run", name, "--port", str(port)]
    log_path = settings.run_dir / "logs" / f"{name}.log"
    proc = procs.spawn(name, argv, env, log_path, True)
    procs.write_pidfile(settings.run_dir, procs.ProcRecord(name, proc.pid, port, url, str(log_path), time.time(), argv))
    procs.wait_healthy(name, url, proc, log_path)
    return status(settings, server)


def stop_one(name: str, settings: Settings | None = None) -> bool:
    """Stop Redis, one service, one extra instance (``claims#2``) or JupyterLab; True if something was stopped."""
    settings = settings or get_settings()
    if name == "redis":
        return redis_server.stop(settings)
    record = procs.read_pidfiles(settings.run_dir).get(name)
    if record is None:
        known = ", ".join(["redis", *SERVICE_NAMES])
        if name.split("#")[0] not in SERVICE_NAMES and name != JUPYTER:
            raise LabkitError(f"unknown name {name!r}; choose one of {known}")
        return False
    stopped = False
    if procs.is_alive(record.pid) and procs.looks_like_ours(record.pid, _marker(name)):
        procs.stop_pid(record.pid)
        stopped = True
    procs.remove_pidfile(settings.run_dir, name)
    return stopped


# --- JupyterLab (``labkit lab``) -----------------------------------------------------------------------
# ``labkit lab`` becomes JupyterLab (exec: same pid), rooted at the project so notebooks/, exercises/ and
# the README are all in its file browser, opening notebook 00. Its pid is recorded like a service's, so
# ``labkit stop-all`` (``make stop``) stops it too.

JUPYTER = "jupyter"
START_NOTEBOOK = "notebooks/00_start_here.ipynb"


def _marker(name: str) -> str:
    """What the command line of a process we started shows (a stale pidfile's pid may be someone else's)."""
    return "jupyter" if name == JUPYTER else "services."


def jupyter_argv(jupyter: str, root: Path, extra: list[str]) -> list[str]:
    """``jupyter lab`` rooted at ``root``, opening notebook 00 (so the URL Jupyter prints names it)."""
    argv = [jupyter, "lab", f"--ServerApp.root_dir={root}", f"--ServerApp.default_url=/lab/tree/{START_NOTEBOOK}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        argv.append("--allow-root")  # containers and CI machines often run as root; Jupyter refuses without it
    return argv + extra


def running_jupyter(settings: Settings) -> int | None:
    """The pid of the JupyterLab ``labkit lab`` started for this lab, if it still runs."""
    record = procs.read_pidfiles(settings.run_dir).get(JUPYTER)
    if record and procs.is_alive(record.pid) and procs.looks_like_ours(record.pid, _marker(JUPYTER)):
        return record.pid
    return None


def record_jupyter(settings: Settings, argv: list[str]) -> None:
    """Record this process (about to become JupyterLab by exec, keeping its pid) for ``stop-all``."""
    procs.write_pidfile(settings.run_dir, procs.ProcRecord(JUPYTER, os.getpid(), 0, f"/lab/tree/{START_NOTEBOOK}", "",
                                                           time.time(), argv))
