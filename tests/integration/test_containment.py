"""A compromised service must stay contained: attacks made with exactly what one service was given.

"Compromised" = the attacker holds what the policy process holds — its environment (read here from
``/proc/<pid>/environ``, the way any process of the same user could), hence its Redis user and its
identity keys — and nothing the other processes hold.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import redis

from labkit import procs
from labkit.auth import ASK_THE_SERVICE
from services.core import acl, credentials, keys
from services.core.settings import SERVICE_NAMES
from services.patterns import registry
from services.patterns.identity import HEADER, sign_identity


@pytest.fixture(autouse=True)
def _only_with_the_labs_own_server(lab):
    if not lab.redis.managed:
        pytest.skip("per-service users and keys exist only on the server labkit starts")


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as raw:
        entries = raw.read().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def running_services(settings) -> dict[str, int]:
    records = procs.read_pidfiles(settings.run_dir)
    return {name: records[name].pid for name in SERVICE_NAMES if name in records and procs.is_alive(records[name].pid)}


@pytest.fixture
def policy_env(settings):
    return environment_of(running_services(settings)["policy"])


# --- item 11: what each process is given ------------------------------------------------------------------

def test_no_service_process_holds_the_admin_password_or_the_master_secret(settings):
    admin_password, master = acl.password(settings, "default"), settings.shared_secret()
    found = running_services(settings)
    assert set(found) == set(SERVICE_NAMES)
    for name, pid in found.items():
        env = environment_of(pid)
        text = "\n".join(f"{k}={v}" for k, v in env.items())
        assert admin_password not in text, f"{name} holds the admin password"
        assert master not in text, f"{name} holds the master secret"
        assert env["REDIS_URL"].startswith(f"redis://{acl.username(name)}:"), f"{name} is not its own Redis user"
        held = set(json.loads(env["LAB_IDENTITY_KEYS"]))
        assert held == set(credentials.identity_keys_for(master, name)), name
        assert ("LAB_SYSTEM_API_KEY" in env) == (name == "gateway"), name


def test_the_redis_server_gets_its_users_from_a_private_file_not_its_command_line(lab, settings):
    cmdline = open(f"/proc/{lab.redis.pid}/cmdline", "rb").read().decode(errors="replace")
    assert acl.password(settings, "default") not in cmdline


def test_everything_under_the_run_directory_is_private(settings):
    run_dir = settings.run_dir
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    must_exist = [run_dir / "redis.json", run_dir / "internal-secret", run_dir / "logs" / "policy.log",
                  settings.database_path("customer"), settings.database_path("policy"),
                  settings.database_path("claims")]
    for path in must_exist:
        assert path.exists(), path
    loose = []
    for root, dirs, files in os.walk(run_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode & 0o077:
                loose.append((path, oct(mode)))
    assert not loose, loose


# --- item 10: the registry, and identities bound to what they were issued for -------------------------------

def test_the_policy_service_cannot_register_under_another_name(policy_env):
    policy = redis.Redis.from_url(policy_env["REDIS_URL"], decode_responses=True)
    fake = registry.Instance("claims", "claims-1-evil", "127.0.0.1", 1, "evil", time.time())
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.set(keys.registry_instance("claims", fake.instance_id), fake.to_json(), px=3000)
    with pytest.raises(redis.exceptions.NoPermissionError):
        policy.zadd(keys.registry_index("claims"), {fake.instance_id: time.time() + 3})
    policy.close()


def test_with_only_the_policy_services_keys_no_identity_opens_claims(settings, policy_env):
    """Every key labkit gave the policy process, every issuer name: claims refuses them all."""
    url = settings.url_of("claims")
    for pair, key in json.loads(policy_env["LAB_IDENTITY_KEYS"]).items():
        issuer = pair.split("->")[0]
        for claimed_issuer in {issuer, "gateway", "labkit"}:
            for sub in ("labkit", f"service:{claimed_issuer}"):
                header = sign_identity({"sub": sub, "roles": ["system"]}, key, issuer=claimed_issuer,
                                       audience="claims", method="PUT", path="/admin/knobs")
                answer = httpx.put(url + "/admin/knobs", json={"delay_ms": 0}, headers={HEADER: header})
                assert answer.status_code == 401, (pair, claimed_issuer, sub)


class _Collector(BaseHTTPRequestHandler):
    """A fake policy instance: answers everything, keeps every identity header it is sent."""

    captured: list = []

    def _answer(self):
        if self.headers.get(HEADER):
            _Collector.captured.append((self.command, self.path, self.headers[HEADER]))
        body = json.dumps({"status": "ok", "service": "policy"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


def test_identities_a_fake_policy_instance_collects_are_worth_nothing_elsewhere(settings, policy_env, api):
    """The issue's attack: lab-policy registers a fake instance under its own name (allowed), receives part of
    the gateway's policy traffic and its identities, and replays them."""
    _Collector.captured = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    policy = redis.Redis.from_url(policy_env["REDIS_URL"], decode_responses=True)
    fake = registry.Instance("policy", "policy-evil-0001", "127.0.0.1", server.server_address[1], "evil", time.time())
    path = "/policies/POL-000001"
    try:
        deadline = time.monotonic() + 60
        while not _Collector.captured and time.monotonic() < deadline:
            policy.set(keys.registry_instance("policy", fake.instance_id), fake.to_json(), px=5000)
            policy.zadd(keys.registry_index("policy"), {fake.instance_id: time.time() + 5})
            api.get("/api" + path, headers=ASK_THE_SERVICE)
            time.sleep(0.05)
        assert _Collector.captured, "the gateway never routed to the fake instance"
        method, seen_path, header = _Collector.captured[0]
        assert (method, seen_path) == ("GET", path)
        replays = {
            "claims, same path": httpx.get(settings.url_of("claims") + "/claims", headers={HEADER: header}),
            "claims, PUT /admin/knobs": httpx.put(settings.url_of("claims") + "/admin/knobs", json={"delay_ms": 0},
                                                  headers={HEADER: header}),
            "policy, same request": httpx.get(settings.url_of("policy") + path, headers={HEADER: header}),
            "policy, other path": httpx.get(settings.url_of("policy") + "/policies/POL-000002",
                                            headers={HEADER: header}),
            "policy, PUT /admin/knobs": httpx.put(settings.url_of("policy") + "/admin/knobs", json={"delay_ms": 0},
                                                  headers={HEADER: header}),
        }
        assert {what: r.status_code for what, r in replays.items()} == {what: 401 for what in replays}
    finally:
        policy.delete(keys.registry_instance("policy", fake.instance_id))
        policy.zrem(keys.registry_index("policy"), fake.instance_id)
        policy.close()
        server.shutdown()


def _policy_instance_id(settings) -> str:
    return httpx.get(settings.url_of("policy") + "/health").json()["instance"]


def test_a_header_for_one_request_is_accepted_once_and_not_after_it_expires(settings):
    """Signed exactly as the gateway signs (the test holds the master secret): first use 200, then 401."""
    key = settings.identity_key("gateway", "policy")
    path, url = "/policies/POL-000001", settings.url_of("policy") + "/policies/POL-000001"
    instance = _policy_instance_id(settings)
    identity = {"sub": "u-ada", "roles": ["agent"]}
    header = sign_identity(identity, key, issuer="gateway", audience="policy", method="GET", path=path,
                           instance=instance)
    assert httpx.get(url, headers={HEADER: header}).status_code == 200
    assert httpx.get(url, headers={HEADER: header}).status_code == 401
    stale = sign_identity(identity, key, issuer="gateway", audience="policy", method="GET", path=path,
                          instance=instance, now=time.time() - 20)
    assert httpx.get(url, headers={HEADER: stale}).status_code == 401
    unbound = sign_identity(identity, key, issuer="gateway", audience="policy", once=False)
    assert httpx.get(url, headers={HEADER: unbound}).status_code == 401  # the gateway's headers must be bound


def test_a_peer_may_speak_only_for_itself(settings):
    """Claims holds claims->policy (for its own policy checks): it cannot pass off a customer or labkit."""
    key = settings.identity_key("claims", "policy")
    path, url = "/policies/POL-000001", settings.url_of("policy") + "/policies/POL-000001"
    for identity, expected in (({"sub": "service:claims", "roles": ["system"]}, 200),
                               ({"sub": "labkit", "roles": ["system"]}, 401),
                               ({"sub": "service:policy", "roles": ["system"]}, 401)):
        header = sign_identity(identity, key, issuer="claims", audience="policy", method="GET", path=path)
        assert httpx.get(url, headers={HEADER: header}).status_code == expected, identity


def test_labkits_reusable_header_opens_only_the_service_it_names(settings):
    """``lab.service_headers("policy")``: for timing loops, reusable, but policy's alone."""
    from labkit.auth import service_headers

    headers = service_headers(settings, "policy")
    policy = settings.url_of("policy") + "/policies/POL-000001"
    assert [httpx.get(policy, headers=headers).status_code for _ in range(3)] == [200, 200, 200]
    assert httpx.get(settings.url_of("claims") + "/claims", headers=headers).status_code == 401
