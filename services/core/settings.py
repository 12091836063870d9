"""One settings object for the whole lab.

Every port, URL and knob lives here, read from the environment (prefix ``LAB_``) or a ``.env`` file,
plus ``REDIS_URL``. labkit passes the same environment to every process it starts, so the services, the
notebooks and the tests all agree on where things are without a second source of truth.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import credentials
from .vocabulary import Balancer, CoherenceStrategy, DiscoveryMode, TtlStrategy

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The domain services, the gateway and the claims worker (lesson 02), in the order labkit starts them.
SERVICE_NAMES = ("customer", "policy", "claims", "gateway", "worker")

#: Which gateway path prefix belongs to which service: ``/api/policies/...`` -> policy.
ROUTES = {"customers": "customer", "policies": "policy", "claims": "claims"}

#: Lesson 09, the lab split across "hosts" (simulated, ``LAB_SPREAD_HOSTS``): the loopback address each
#: service's processes listen on and advertise, as if each ran on a machine of its own. Linux routes all
#: of 127.0.0.0/8 to ``lo``, so these need no setup there. (The Redis nodes' addresses are labkit's:
#: ``labkit/cluster.py`` ``redis_hosts``.) The dashboard, like labkit, stays on ``advertised_host``.
SPREAD_SERVICE_HOSTS = {"customer": "127.0.0.11", "policy": "127.0.0.12", "claims": "127.0.0.13",
                        "gateway": "127.0.0.14", "worker": "127.0.0.15"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LAB_", env_file=PROJECT_ROOT / ".env", extra="ignore", frozen=True
    )

    # Redis: REDIS_URL wins; otherwise labkit starts the embedded server on redis_port.
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "LAB_REDIS_URL"))
    redis_port: int = 6390
    redis_maxmemory: str = "256mb"
    # Set by labkit when it created one ACL user per service: each service then connects as its own user.
    redis_acl: bool = False
    # Lesson 09: a Redis Cluster instead of one server. labkit then starts 2 x redis_primaries nodes on
    # redis_port and the ports after it (each also needs its port + 10000, the cluster bus), and every process
    # connects with redis-py's cluster client. With REDIS_URL set: a node of your own cluster.
    redis_cluster: bool = False
    redis_primaries: int = Field(default=3, ge=1, le=8)
    # How long a primary may be silent before its replica is promoted (the server's cluster-node-timeout).
    redis_cluster_node_timeout_ms: int = Field(default=2000, ge=500)

    # Where services listen and what address they advertise to others.
    host: str = "127.0.0.1"
    advertised_host: str = "127.0.0.1"
    # Lesson 09 (`labkit start-all --spread`): every Redis node and every service on its own loopback address
    # (SPREAD_SERVICE_HOSTS), listening and advertised there, as if spread over machines. labkit gives each
    # process its own host and advertised_host; every process finds the others with host_of / url_of.
    spread_hosts: bool = False
    gateway_port: int = 3000
    policy_port: int = 3001
    claims_port: int = 3002
    customer_port: int = 3003
    worker_port: int = 3004  # the claims worker (lesson 02): only /health, its work is reading a stream
    dashboard_port: int = 3010  # labkit's live dashboard (a page over Server-Sent Events), not a service

    # labkit's bench: pidfiles, logs, the SQLite files, the Redis state file.
    run_dir: Path = PROJECT_ROOT / ".lab"

    # Tracing (lesson 10, services/platform/tracing.py): spans go to <run_dir>/traces/<instance>.jsonl (OTLP
    # JSON); past this size the file is rotated to .1 (one old generation kept), so a process holds at most
    # twice this on disk. The standard OTEL_* variables choose sampling, a collector, or no tracing at all.
    # On by default, with the lab's sampler: every write is traced, and this share of reads (a request with a
    # traceparent follows its caller instead). Tracing every read cost a cached read through the gateway most
    # of its throughput on this kind of machine; an unsampled request skips the instrumentation entirely
    # (benchmarks/tracing.py, README "Tracing"). LAB_TRACING=0 (or OTEL_SDK_DISABLED=true) turns it off;
    # OTEL_TRACES_SAMPLER replaces the lab's sampler.
    tracing: bool = True
    trace_read_ratio: float = Field(0.01, ge=0, le=1)
    trace_file_max_bytes: int = 8 * 1024 * 1024

    # The system of record is a "slow core insurance system": this many ms are added to every query.
    sor_latency_ms: float = 0.0

    # Caching (lesson 01): cache-aside reads of entities, lists and the customer overview.
    cache_enabled: bool = True  # False: every read goes to the system of record (X-Cache: MISS)
    cache_ttl_strategy: TtlStrategy = "jittered"  # fixed | jittered | sliding (see services/patterns/cache.py)
    cache_ttl_s: float = 300.0  # default TTL of a cached copy
    cache_ttl_per_kind: dict[str, float] = {"customer": 600, "policy": 300, "claim": 60, "policies": 120,
                                            "overview": 60}  # e.g. LAB_CACHE_TTL_PER_KIND='{"claim":30}'
    cache_jitter: float = 0.1  # jittered: TTL * (1 ± jitter)
    cache_negative_ttl_s: float = 5.0  # "no such id" is cached this long; 0 = never
    cache_timeout_s: float = 0.25  # a cache call slower than this counts as a miss (fail open)
    # A cache HIT by id answered in front of FastAPI by the same pattern functions (lesson 07;
    # services/platform/cached_read.py); False: every request goes through the route.
    fast_reads: bool = True
    # After start-up, the objects it made are frozen out of the garbage collector's full collections
    # (services/platform/app.py: freeze_what_startup_made); False keeps Python's default, to compare.
    gc_freeze: bool = True
    # How a write keeps the copies coherent (lesson 06; services/platform/service_cache.py, services/patterns/coherence.py):
    # delete_with_token (delete the copy and bump the entity's generation, so a reader that loaded the old
    # row before the write cannot put it back), delete_on_write (lesson 01's plain delete: the stale-set race
    # stays open), write_through (SET the committed row as the copy), versioned_keys (bump the version;
    # readers read the copy of the current version), event_driven (the writer only announces; every instance
    # deletes when the event arrives), ttl_only (no invalidation: copies are wrong until they expire).
    cache_coherence: CoherenceStrategy = "delete_with_token"

    # Timeouts (seconds) for one upstream call from the gateway or between services.
    upstream_timeout_s: float = 5.0
    redis_timeout_s: float = 1.0
    # How long labkit waits for a process it started to answer /health. Importing FastAPI takes ~1 s on a
    # quiet machine and over a minute on one shared by many test runs: raise it there, never lower it.
    start_timeout_s: float = 60.0

    # Idle keep-alive connections. A client must drop an idle connection before the server closes it, or a
    # request can leave on a connection the server is just closing, and fail (the gateway then answers 502).
    # So every server keeps idle connections longer than the gateway's pool keeps them.
    server_keep_alive_s: float = 75.0  # a server closes a connection idle this long (uvicorn's default: 5)
    gateway_pool_idle_s: float = 30.0  # the gateway's pool of upstream connections drops one idle this long

    # Biggest request body a service accepts.
    max_body_bytes: int = 64 * 1024

    # Sessions and logins (lesson 04).
    session_idle_s: float = 900  # sliding: a session unused this long expires
    session_absolute_s: float = 8 * 3600  # however active, a session ends after this long
    login_max_failures_account: int = 5
    login_max_failures_client: int = 20
    login_window_s: int = 900
    # The lab's master secret, from which every Redis password and identity key derives; empty = kept in
    # <run_dir>/internal-secret. Only labkit (and the notebooks and tests through it) holds it: a service
    # labkit starts gets just its own keys below and its own Redis user's URL (services/core/credentials.py).
    internal_secret: str = ""
    # The identity keys this process holds, "issuer->audience": key. Empty = derive them from the master.
    identity_keys: dict[str, str] = {}
    # The lab's API key (the system user at the gateway), handed to the gateway alone. Empty = derived.
    system_api_key: str = ""

    # Events (lesson 02): the outbox relay, the claims worker's consumer group.
    outbox_batch: int = 100  # outbox rows published per round trip (pipelined)
    outbox_poll_s: float = 0.5  # the relay also wakes after every write; this is the fallback
    # On a cluster (lesson 09): how many replicas must hold an event before the relay marks it sent (WAIT);
    # 0 = mark it sent once the primary has it, and lose it if that primary dies before replicating.
    outbox_replica_acks: int = Field(default=1, ge=0)
    events_dedupe_ttl_s: int = 7 * 24 * 3600  # how long "event id already published" is remembered
    events_stream_maxlen: int = 100_000  # topic streams are trimmed (approximately) to this many entries
    worker_group: str = "claims-worker"
    worker_max_deliveries: int = 3  # after this many failed deliveries an entry goes to the dead letter
    worker_reclaim_idle_ms: int = 5_000  # pending this long = its consumer died; XAUTOCLAIM takes it over
    worker_review_threshold: float = 0.5  # risk score (amount / coverage) from which a claim goes to review

    # Discovery (lesson 03): every instance registers in Redis and keeps the registration alive.
    registry_heartbeat_s: float = 1.0  # how often an instance renews its registration
    registry_ttl_s: float = 3.0  # a registration not renewed this long expires: the instance is gone
    instance_weight: int = 1  # this instance's share for the gateway's weighted strategy

    # The gateway (lesson 05): its local view of the registry, health checks, balancing, breaker, limits.
    gateway_sync_s: float = 1.0  # full re-read of the registry (events do the fast path)
    peer_refresh_s: float = 1.0  # a service re-reads a peer's instances from the registry at most this often
    gateway_probe_s: float = 0.5  # active health check: GET /health on every instance this often
    gateway_unhealthy_after: int = 2  # consecutive failed probes (or refused connections) -> unhealthy
    gateway_healthy_after: int = 2  # consecutive good probes -> healthy again
    gateway_balancer: Balancer = "round_robin"  # round_robin | random | least_outstanding | weighted
    gateway_balancer_per_service: dict[str, Balancer] = {}  # e.g. LAB_GATEWAY_BALANCER_PER_SERVICE='{"claims":"weighted"}'
    gateway_discovery: DiscoveryMode = "registry"  # registry | static (the settings ports, one instance each)
    breaker_failures: int = 5  # consecutive failures that open an instance's circuit breaker
    breaker_open_s: float = 2.0  # how long it stays open before one trial request (half-open)
    rate_limit_requests: int = 0  # per client per window at the gateway; 0 = no rate limiting
    rate_limit_window_s: float = 1.0
    gateway_cache_ttl_s: float = 2.0  # keep GET answers about an entity at the gateway this long; 0 = off

    version: str = "0.1.0"

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def host_of(self, name: str) -> str:
        """The address process ``name`` (``claims``, ``claims#2``, ``dashboard``) listens on and is reached at:
        its own loopback address in a lab spread over hosts, else ``advertised_host``."""
        if self.spread_hosts:
            return SPREAD_SERVICE_HOSTS.get(name.split("#")[0], self.advertised_host)
        return self.advertised_host

    def url_of(self, service: str) -> str:
        return f"http://{self.host_of(service)}:{self.port_of(service)}"

    @cached_property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def database_path(self, service: str) -> Path:
        return self.data_dir / f"{service}.sqlite3"

    def shared_secret(self) -> str:
        """The identity-signing key: from the environment, or the run directory's (made once, mode 0600)."""
        return self.secret_value

    @cached_property
    def secret_value(self) -> str:
        """Read once per settings object: every request checks a signature, none should read a file."""
        if self.internal_secret:
            return self.internal_secret
        path = self.run_dir / "internal-secret"
        if not path.exists():  # labkit makes it before it starts any service; this is the fallback
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
        return path.read_text().strip()

    def identity_key(self, issuer: str, audience: str) -> str | None:
        """The key for identities ``issuer`` signs for ``audience``, if this process was given it.

        A process labkit started holds only its own few (``identity_keys``); one that holds the master
        secret (labkit, a test, a process started by hand with ``LAB_INTERNAL_SECRET``) can derive any."""
        if self.identity_keys:
            return self.identity_keys.get(credentials.pair(issuer, audience))
        return credentials.identity_key(self.shared_secret(), issuer, audience)

    def api_key(self) -> str:
        """The key labkit, tests and curl use at the gateway to act as the lab's system user."""
        return self.api_key_value

    def is_api_key(self, presented: str) -> bool:
        """Is ``presented`` the lab's API key? Constant time, on bytes: ``hmac.compare_digest`` raises
        TypeError for a str with non-ASCII characters, and a header like ``Bearer é`` must be a plain "no"."""
        return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), self.api_key().encode())

    @cached_property
    def api_key_value(self) -> str:
        if self.system_api_key:
            return self.system_api_key
        return hmac.new(self.shared_secret().encode(), b"lab-api-key", hashlib.sha256).hexdigest()[:40]


def get_settings() -> Settings:
    """Read the environment now (not at import), so a test or notebook can change it first."""
    return Settings()
