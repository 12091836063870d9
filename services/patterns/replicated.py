"""Written *and replicated* before it counts (lesson 09): ``WAIT`` after the outbox relay's writes on a cluster.

A cluster primary answers a write before its replica has it; replication follows a moment later. If the
primary dies in that moment, the replica promoted in its place never saw the write: it is lost, although the
client was told "OK". For the outbox that would be an event marked sent that no consumer will ever read.

``WAIT numreplicas timeout`` blocks until ``numreplicas`` replicas acknowledged every write *this connection*
sent before it. So the relay sends each primary its share of the batch and the ``WAIT`` on one connection of
that primary — the cluster client's pipeline would spread them over pooled connections, and a ``WAIT`` on a
connection that wrote nothing returns at once, vouching for nothing. Fewer acknowledgements than asked:
``NotReplicated``, and the relay keeps the rows unsent and tries again. The retry is harmless: the events'
dedupe keys make the second publish of an event that did survive a no-op.
"""

from __future__ import annotations

from collections import defaultdict

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError


class NotReplicated(RedisError):
    """A primary took the writes, but too few replicas acknowledged them in time."""


def is_cluster(r) -> bool:
    return isinstance(r, RedisCluster)


def _node_client(r: RedisCluster, node) -> aioredis.Redis:
    """One connection to exactly this node, as the same Redis user as the cluster client."""
    kw = node.connection_kwargs
    return aioredis.Redis(host=node.host, port=node.port, username=kw.get("username"), password=kw.get("password"),
                          decode_responses=True, socket_timeout=kw.get("socket_timeout"),
                          socket_connect_timeout=kw.get("socket_connect_timeout"), single_connection_client=True)


async def replicas_assigned(client: aioredis.Redis) -> int:
    """How many replicas the cluster lists for the node ``client`` is connected to, asked of that node now.

    Listed means assigned, connected or not: a replica frozen, cut off or restarting stays this node's
    replica (flagged ``fail``) and is still owed the writes, so the relay waits for it. Asking the slot map
    the client read earlier is not enough: it goes stale without an error to refresh it (a replica added
    back later is missing from it, and the relay stopped waiting: lesson 09 lost events that way), and
    ``CLUSTER SLOTS`` leaves failed replicas out. A replica promoted away is no longer listed: then there is
    none to wait for.
    """
    nodes = await client.execute_command("CLUSTER", "NODES")
    rows = [line.split() for line in nodes.splitlines() if line.strip()]
    me = next(row[0] for row in rows if "myself" in row[2].split(","))
    return sum(1 for row in rows if row[3] == me)


async def eval_replicated(r: RedisCluster, script: str, calls: list[tuple[list[str], list]], replicas: int,
                          timeout_ms: int) -> list:
    """EVAL ``script`` once per ``(keys, args)`` on the primary owning the keys, then ``WAIT`` there.

    Returns the scripts' results in call order. Raises ``NotReplicated`` (or a connection error) without
    deciding anything: the caller keeps what it sent as not yet done.
    """
    by_node: dict = defaultdict(list)
    for index, (call_keys, args) in enumerate(calls):
        by_node[r.get_node_from_key(call_keys[0])].append((index, call_keys, args))
    results: list = [None] * len(calls)
    for node, node_calls in by_node.items():
        client = _node_client(r, node)
        try:
            # A primary whose replica was promoted away has none left to wait for: the cluster runs without
            # redundancy for those slots until a replica is added, and waiting would block the outbox for good.
            wanted = min(replicas, await replicas_assigned(client)) if replicas else 0
            pipe = client.pipeline(transaction=False)
            for _, call_keys, args in node_calls:
                pipe.eval(script, len(call_keys), *call_keys, *args)
            pipe.execute_command("WAIT", wanted, timeout_ms if wanted else 0)
            *answers, acknowledged = await pipe.execute()
        except (ConnectionError, OSError, RedisError):
            await r.nodes_manager.initialize()  # the slot map may be stale (a failover): read it again
            raise
        finally:
            await client.aclose()
        if int(acknowledged) < wanted:
            raise NotReplicated(f"{node.host}:{node.port} wrote {len(node_calls)} event(s) but {acknowledged} of "
                                f"{wanted} replica(s) acknowledged them within {timeout_ms} ms")
        for (index, _, _), answer in zip(node_calls, answers):
            results[index] = answer
    return results
