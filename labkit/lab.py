"""Start, inspect and stop the whole lab: the Redis server and the four services.

``start_all()`` is idempotent: whatever already answers healthy on its port is reused, never duplicated,
so a notebook can call it at the top of every lesson. Ports, URLs and the run directory come from
``services.core.settings``; the same settings reach every child process through its environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from services.core import acl, credentials
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

    def service_headers(self, service: str) -> dict[str, str]:
        """A signed identity for calls straight to ``service`` (no other accepts it); valid for about a minute."""
        return auth.service_headers(self.settings, service)

    def service_client(self, service: str) -> httpx.Client:
        """An HTTP client straight to one service (each request signed as the lab's system user)."""
        return auth.service_client(self.settings, service)

    def redis_client(self, **kwargs):
        if self.redis is None:
            raise LabkitError("Redis is not running: call labkit.start_all() first")
        return self.redis.client(**kwargs)

    def redis_client_as(self, service: str, **kwargs):
        """A client that connects as ``service``'s own Redis user (``lab-<service>``): exactly what that
        service's process is given, to see what a compromised service could reach (lesson 04)."""
        if self.redis is None or not self.redis.managed:
            raise LabkitError("per-service Redis users exist only on the server labkit starts")
        url = acl.service_url(self.settings.model_copy(update={"redis_url": self.redis.url}), service)
        return redis.Redis.from_url(url, decode_responses=True, **kwargs)

    def start_beside(self, service: str, *, port: int | None = None, name: str | None = None,
                     **overrides: str) -> tuple[subprocess.Popen, int]:
        """One more ``service`` process on this lab's Redis and run directory, outside the lab's pidfiles (a
        lesson's second gateway, a test's): healthy, on ``port`` or a free one; ``overrides``: more ``LAB_*``
        settings. Returns ``(process, port)``; it dies with this process's group, or ``terminate()`` it."""
        if self.redis is None:
            raise LabkitError("Redis is not running: call labkit.start_all() first")
        name = name or f"{service}-beside"
        env = {"REDIS_URL": self.redis.url, "LAB_RUN_DIR": str(self.settings.run_dir),
               "LAB_INTERNAL_SECRET": self.settings.shared_secret()} | overrides
        return procs.start_service(service, self.settings.run_dir / "logs" / f"{name}.log", env, port=port, name=name,
                                   timeout=self.settings.start_timeout_s)

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

    def node_rows(self) -> list[dict]:
        """A cluster's nodes, each as it describes itself now: role, the primary it follows, slots, keys."""
        if self.redis is None or not self.redis.nodes:
            return []
        from . import cluster

        admin = acl.password(self.settings, "default")
        return [{"name": f"  node {n['port']}", "url": f"{n['host']}:{n['port']}", "pid": n["pid"],
                 "status": "down" if n["role"] == "down" else "healthy", "version": n["role"],
                 "instance": f"follows {n['follows']}" if n["follows"] != "-" else f"slots {n['slots']}",
                 "detail": f"{n['keys']} keys, {n['memory']}"}
                for n in cluster.describe(self.redis.node_list(), admin)]

    def rows(self) -> list[dict]:
        return [self.redis_row(), *self.node_rows()] + [s.row() for s in self.services]

    def __repr__(self) -> str:
        return text_table(self.rows())

    def _repr_html_(self) -> str:
        return html_table(self.rows(), caption="redis-insurance-lab")

    def stop(self) -> None:
        stop_all(self.settings)

    @property
    def dashboard_url(self) -> str:
        return self.settings.url_of(DASHBOARD) + "/"

    def dashboard(self, *, height: int = 720, actions: bool = False, proxied: bool | None = None):
        """The live dashboard inline in a notebook (an IFrame), beside the experiment that changes the lab.

        By default it loads through Jupyter's own URL, ``/proxy/<port>/`` (jupyter-server-proxy, under
        JupyterHub's prefix when there is one), so it works the same when JupyterLab runs on a remote or hosted
        machine: no extra port must be reachable. ``proxied=False`` (or ``LAB_DASHBOARD_PROXIED=0``; the
        default in VS Code, which has no Jupyter server to proxy through) loads ``http://127.0.0.1:<port>/``.
        ``actions=True`` hands the page the lab's API key (in the URL fragment, which is never sent to a
        server) so its kill/scale buttons show — the key then sits in this cell's output: do not share a
        notebook saved with it.
        """
        from IPython.display import IFrame

        if proxied is None:
            choice = os.environ.get("LAB_DASHBOARD_PROXIED")
            proxied = choice not in ("0", "false", "no") if choice else "VSCODE_PID" not in os.environ
        if proxied:
            prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/").rstrip("/")
            url = f"{prefix}/proxy/{self.settings.dashboard_port}/"
        else:
            url = self.dashboard_url
        if actions:
            url += "#key=" + self.settings.api_key()
        return IFrame(url, width="100%", height=height)


#: Settings a service process is never given: the master secret and what stands in for it (each service
#: gets its own share of these below), and the admin REDIS_URL.
WITHHELD = ("internal_secret", "identity_keys", "system_api_key", "redis_url", "redis_acl")


def settings_env(settings: Settings, redis_url: str, managed_acl: bool, service: str) -> dict[str, str]:
    """The environment the process of ``service`` gets: ours minus any secret, every setting spelled out,
    and only its own credentials — its own Redis user's URL (on the server labkit started) and its own
    identity keys (``services/core/credentials.py``). A compromised service then holds nothing that opens
    another one. (Behind a REDIS_URL of your own there are no per-service users: every service gets that URL.)
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "LAB_REDIS_URL") and k.removeprefix("LAB_").lower() not in WITHHELD}
    for name, value in settings.model_dump().items():
        if name not in WITHHELD and value is not None:
            env[f"LAB_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    master = settings.shared_secret()
    per_service_users = managed_acl or settings.redis_acl  # labkit's server, or yours with `labkit acl` applied
    env["REDIS_URL"] = acl.service_url(settings.model_copy(update={"redis_url": redis_url}), service) \
        if per_service_users else redis_url
    env["LAB_IDENTITY_KEYS"] = json.dumps(credentials.identity_keys_for(master, service))
    if service == "gateway":  # the edge checks the lab's API key
        env["LAB_SYSTEM_API_KEY"] = settings.api_key()
    if redis_server.recorded_cluster(settings):  # started with --cluster: every later process follows it
        env["LAB_REDIS_CLUSTER"] = "True"
    if redis_server.recorded_spread(settings):  # spread over hosts: the service's own address, bound and advertised
        env["LAB_SPREAD_HOSTS"] = "True"
        env["LAB_HOST"] = env["LAB_ADVERTISED_HOST"] = as_laid_out(settings).host_of(service)
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


def as_laid_out(settings: Settings) -> Settings:
    """``settings`` as the running lab was laid out: a lab started spread over hosts (``start-all --spread``)
    stays spread for every later call, flag or not, so each process is looked for at its own address."""
    if not settings.spread_hosts and redis_server.recorded_spread(settings):
        return settings.model_copy(update={"spread_hosts": True})
    return settings


def check_spread_hosts(settings: Settings) -> None:
    """A lab spread over hosts needs loopback addresses besides 127.0.0.1: Linux routes all of 127.0.0.0/8
    to ``lo`` with no setup; other systems may need them added as aliases of the loopback interface."""
    from .cluster import redis_hosts

    for host in (*redis_hosts(1), *(settings.host_of(name) for name in SERVICE_NAMES)):
        if not procs.can_bind(host, 0):
            raise LabkitError(f"this machine cannot listen on {host}: a lab spread over hosts (--spread, "
                              "LAB_SPREAD_HOSTS) needs the loopback addresses 127.0.0.2 ... 127.0.0.15. Linux has all of "
                              "127.0.0.0/8 on lo; elsewhere add them to the loopback interface, or start without --spread.")


def start_all(settings: Settings | None = None, *, detached: bool | None = None,
              timeout: float | None = None) -> Lab:
    """Bring Redis and every service up (reusing what already runs) and return the Lab handle.

    ``detached`` (default: False in Python, True from the CLI) decides whether the processes outlive
    this one. From a notebook they must not: they die with the kernel.
    """
    settings = as_laid_out(settings or get_settings())
    timeout = settings.start_timeout_s if timeout is None else timeout
    detached = bool(detached)
    if settings.spread_hosts:
        check_spread_hosts(settings)
    procs.make_private(settings.run_dir)  # 0700, and 0600 for what an older lab left there
    settings.shared_secret()  # made once (mode 0600), before labkit derives each service's keys from it
    # Check every port before starting anything, so a busy port never leaves half a lab running.
    to_start = []
    for name in SERVICE_NAMES:
        health = procs.get_health(settings.url_of(name))
        if health and health.get("service") == name:
            continue  # already up: reuse it
        port = settings.port_of(name)
        if procs.port_in_use(settings.host_of(name), port):
            raise PortBusyError(port, f"the {name} service", procs.port_holder(port), f"LAB_{name.upper()}_PORT")
        to_start.append(name)
    dashboard_needed = not _dashboard_answers(settings)
    if dashboard_needed and procs.port_in_use(settings.host, settings.dashboard_port):
        raise PortBusyError(settings.dashboard_port, "the lab dashboard", procs.port_holder(settings.dashboard_port),
                            "LAB_DASHBOARD_PORT")

    running_redis = redis_server.current(settings)
    started_redis: redis_server.RedisServer | None = None
    started: dict[str, tuple] = {}
    try:
        server = running_redis or redis_server.ensure(settings, detached)
        if running_redis is None and server.managed:
            started_redis = server
        for name in to_start:
            url, port = settings.url_of(name), settings.port_of(name)
            log_path = settings.run_dir / "logs" / f"{name}.log"
            env = settings_env(settings, server.url, server.managed, name)
            proc = procs.spawn_service(name, port, env, log_path, detached=detached)
            procs.write_pidfile(settings.run_dir, procs.ProcRecord(name, proc.pid, port, url, str(log_path),
                                                                   time.time(), proc.args))
            started[name] = (proc, url, log_path)
        if dashboard_needed:
            started[DASHBOARD] = _spawn_dashboard(settings, detached)

        procs.wait_all_healthy(started, timeout=timeout)
    except BaseException as exc:
        _after_a_failed_start(settings, started_redis, started, detached, exc)
        raise
    return status(settings, server)


def _after_a_failed_start(settings: Settings, started_redis: redis_server.RedisServer | None,
                          started: dict[str, tuple], detached: bool, exc: BaseException) -> None:
    """``start_all`` failed part-way. From Python (a notebook, a test, a private lab) stop what this call
    started, so nothing is left behind; from the CLI leave it (the next ``start-all`` reuses whatever is
    healthy) but say exactly what runs and how to stop it."""
    pids = {name: proc.pid for name, (proc, _, _) in started.items()}
    if started_redis is not None:
        pids = {"redis": started_redis.pid} | pids
    if not pids:
        return
    if detached:
        left = ", ".join(f"{name} (pid {pid})" for name, pid in pids.items() if pid and procs.is_alive(pid))
        note = (f"\n  This start-all left running: {left}.\n  Stop them with `labkit stop-all`, or fix the problem "
                "and run `labkit start-all` again (it reuses what is healthy).") if left else ""
    else:
        for name, pid in pids.items():
            if name != "redis":
                procs.stop_pid(pid)
                procs.remove_pidfile(settings.run_dir, name)
        if started_redis is not None:
            redis_server.stop(settings)
        note = f"\n  Stopped what this call had started: {', '.join(pids)}."
    if isinstance(exc, LabkitError) and exc.args:
        exc.args = (f"{exc.args[0]}{note}", *exc.args[1:])  # the message the CLI and a notebook show
    elif note:
        exc.add_note(note.strip())


def status(settings: Settings | None = None, server: redis_server.RedisServer | None = None) -> Lab:
    settings = as_laid_out(settings or get_settings())
    server = server or redis_server.current(settings)
    records = procs.read_pidfiles(settings.run_dir)
    services = []
    for name in SERVICE_NAMES:
        services.append(_service_status(settings, name, records))
        services += [_instance_status(records[extra]) for extra in _extra_instances(records, name)]
    services.append(_service_status(settings, DASHBOARD, records))
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
    url = f"http://{settings.host_of(name)}:{port}"
    log_path = settings.run_dir / "logs" / f"{name}.log"
    proc = procs.spawn_service(name.split("#")[0], port, env, log_path, name=name, detached=detached)
    procs.write_pidfile(settings.run_dir, procs.ProcRecord(name, proc.pid, port, url, str(log_path), time.time(),
                                                           proc.args))
    return proc, url, log_path


def scale(name: str, n: int, settings: Settings | None = None, *, detached: bool | None = None,
          weights: dict[int, int] | None = None, timeout: float | None = None) -> Lab:
    """Run exactly ``n`` instances of service ``name``: start ``name#2``.. on free ports, or stop the extra ones
    (gracefully: they deregister). A dead extra instance (SIGKILLed) is started again on its old port.
    ``weights`` ({2: 3}) gives instance #k a weight for the gateway's weighted strategy.
    """
    settings = as_laid_out(settings or get_settings())
    timeout = settings.start_timeout_s if timeout is None else timeout
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
        host = settings.host_of(name)
        port = record.port if record and not procs.port_in_use(host, record.port) else procs.free_port(host)
        env = settings_env(settings, server.url, server.managed, name)
        if weights and k in weights:
            env["LAB_INSTANCE_WEIGHT"] = str(weights[k])
        started[extra] = (env, *_spawn_instance(settings, env, extra, port, bool(detached)))
    for extra, (env, proc, url, log_path) in started.items():
        for attempt in range(1, 4):
            try:
                procs.wait_healthy(extra, url, proc, log_path, timeout=timeout)
                break
            except PortBusyError:  # its port was taken before it could bind: another free port
                if attempt == 3:
                    raise
                proc, url, log_path = _spawn_instance(settings, env, extra, procs.free_port(settings.host_of(name)),
                                                      bool(detached))
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
    env = settings_env(settings, server.url, server.managed, name.split("#")[0])
    proc, url, log_path = _spawn_instance(settings, env, name, record.port, bool(detached))
    procs.wait_healthy(name, url, proc, log_path, timeout=settings.start_timeout_s)
    return status(settings, server)


# --- the live dashboard (labkit/dashboard/): a process of the lab like the services, but labkit's own ----

DASHBOARD = "dashboard"
DASHBOARD_MODULE = "labkit.dashboard"


def _dashboard_answers(settings: Settings) -> bool:
    health = procs.get_health(settings.url_of(DASHBOARD))
    return bool(health and health.get("service") == DASHBOARD)


def _spawn_dashboard(settings: Settings, detached: bool):
    """Start ``python -m labkit.dashboard``. It is labkit (the lab bench, like the CLI), not a service: it gets
    labkit's own environment with every setting spelled out, and finds Redis the way labkit does
    (``<run_dir>/redis.json``), so its Redis faults (freeze) act on the lab's own server."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name, value in settings.model_dump().items():
        if value is not None and name != "redis_url":
            env[f"LAB_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if not settings.redis_url:
        env.pop("REDIS_URL", None)
    url, port = settings.url_of(DASHBOARD), settings.dashboard_port
    argv = [sys.executable, "-m", DASHBOARD_MODULE, "--port", str(port)]
    log_path = settings.run_dir / "logs" / f"{DASHBOARD}.log"
    proc = procs.spawn(DASHBOARD, argv, env, log_path, detached)
    procs.write_pidfile(settings.run_dir, procs.ProcRecord(DASHBOARD, proc.pid, port, url, str(log_path), time.time(),
                                                           argv))
    return proc, url, log_path


def start_dashboard(settings: Settings | None = None, *, detached: bool | None = None) -> str:
    """Start only the dashboard (the lab must be up; ``start_all`` starts it too). Returns its address."""
    settings = settings or get_settings()
    if not _dashboard_answers(settings):
        server = redis_server.current(settings)
        if server is None:
            raise LabkitError("the lab is not running: `labkit start-all` (it starts the dashboard too)")
        if procs.port_in_use(settings.host, settings.dashboard_port):
            raise PortBusyError(settings.dashboard_port, "the lab dashboard",
                                procs.port_holder(settings.dashboard_port), "LAB_DASHBOARD_PORT")
        proc, url, log_path = _spawn_dashboard(settings, bool(detached))
        procs.wait_healthy(DASHBOARD, url, proc, log_path, timeout=settings.start_timeout_s)
    return settings.url_of(DASHBOARD) + "/"


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
    settings = as_laid_out(settings or get_settings())
    if name not in SERVICE_NAMES:
        raise LabkitError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}")
    record = procs.read_pidfiles(settings.run_dir).get(name)
    if record and procs.is_alive(record.pid):
        procs.stop_pid(record.pid)
    procs.remove_pidfile(settings.run_dir, name)
    deadline = time.monotonic() + 5
    while procs.port_in_use(settings.host_of(name), settings.port_of(name)) and time.monotonic() < deadline:
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
    settings = as_laid_out(settings or get_settings())
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    if name == "redis":
        return status(settings, redis_server.ensure(settings, detached=True))
    if name not in SERVICE_NAMES:
        raise LabkitError(f"unknown name {name!r}; choose redis or one of {', '.join(SERVICE_NAMES)}")
    url, port = settings.url_of(name), settings.port_of(name)
    health = procs.get_health(url)
    if health and health.get("service") == name:
        return status(settings)  # already up
    if procs.port_in_use(settings.host_of(name), port):
        raise PortBusyError(port, f"the {name} service", procs.port_holder(port), f"LAB_{name.upper()}_PORT")
    settings.shared_secret()
    server = redis_server.ensure(settings, detached=True)
    env = settings_env(settings, server.url, server.managed, name)
    log_path = settings.run_dir / "logs" / f"{name}.log"
    proc = procs.spawn_service(name, port, env, log_path, detached=True)
    procs.write_pidfile(settings.run_dir, procs.ProcRecord(name, proc.pid, port, url, str(log_path), time.time(),
                                                           proc.args))
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
    return {JUPYTER: "jupyter", DASHBOARD: DASHBOARD_MODULE}.get(name, "services.")


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
