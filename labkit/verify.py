"""``labkit verify`` (the original lab's ``npm run verify``, which was never written).

Each check is a row: what was checked, PASS or FAIL, what was seen, and for a failure a concrete fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from services.core.settings import ROUTES, SERVICE_NAMES, Settings, get_settings

from . import redis_server
from .auth import gateway_client


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def row(self) -> dict:
        return {"check": self.name, "result": "PASS" if self.ok else "FAIL", "detail": self.detail,
                "fix": "" if self.ok else self.fix}


def check_redis(settings: Settings) -> Check:
    server = redis_server.current(settings)
    if server is None:
        where = redis_server.RedisServer(settings.redis_url, "REDIS_URL", False).display_url if settings.redis_url \
            else f"127.0.0.1:{settings.redis_port}"
        return Check("redis reachable", False, f"no answer from {where}",
                     "run `labkit start-all` (or check REDIS_URL if you set it)")
    info = server.info()
    # display_url: the admin password stays out of the output (`labkit redis-url` is the one that prints it)
    return Check("redis reachable", True, f"{info['name']} {info['version']} at {server.display_url} ({server.source})")


def check_service(settings: Settings, name: str) -> Check:
    url = settings.url_of(name)
    try:
        health = httpx.get(url + "/health", timeout=2).json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check(f"{name} healthy", False, f"{url}/health: {type(exc).__name__}",
                     f"run `labkit start-all`; if it still fails, `labkit logs {name}`")
    ok = health.get("status") == "ok" and health.get("service") == name
    return Check(f"{name} healthy", ok, f"{health.get('status')} ({health.get('instance')}, "
                 f"redis {health.get('redis', {}).get('latency_ms')} ms)",
                 f"`labkit logs {name}`; a 'degraded' status means it cannot reach Redis")


def check_route(client: httpx.Client, resource: str) -> Check:
    service = ROUTES[resource]
    try:
        response = client.get(f"/api/{resource}", params={"limit": 1})
    except httpx.HTTPError as exc:
        return Check(f"gateway -> {service}", False, type(exc).__name__, "is the gateway up? `labkit status`")
    ok = response.status_code == 200 and "items" in response.json()
    return Check(f"gateway -> {service}", ok, f"GET /api/{resource} -> {response.status_code}",
                 f"`labkit logs gateway` and `labkit logs {service}`")


def check_workflow(client: httpx.Client) -> Check:
    """customer -> policy -> claim through the gateway, then read all three back."""
    name = "workflow customer -> policy -> claim"
    try:
        customer = client.post("/api/customers", json={
            "name": "Verify Check", "email": "verify@example.com", "date_of_birth": "1990-01-01",
            "risk_tier": "low"})
        customer.raise_for_status()
        cid = customer.json()["id"]
        policy = client.post("/api/policies", json={
            "customer_id": cid, "product": "home", "premium_cents": 50_000, "coverage_cents": 10_000_000,
            "start_date": "2026-01-01", "end_date": "2027-01-01"})
        policy.raise_for_status()
        pid = policy.json()["id"]
        claim = client.post("/api/claims", json={"policy_id": pid, "amount_cents": 25_000,
                                                 "description": "labkit verify"})
        claim.raise_for_status()
        clid = claim.json()["id"]
        back = [client.get(path) for path in (f"/api/customers/{cid}", f"/api/policies/{pid}", f"/api/claims/{clid}")]
    except httpx.HTTPStatusError as exc:
        return Check(name, False, f"{exc.request.method} {exc.request.url.path} -> {exc.response.status_code}: "
                     f"{exc.response.text[:120]}", "read the error above; `labkit logs gateway`")
    except httpx.HTTPError as exc:
        return Check(name, False, type(exc).__name__, "is the gateway up? `labkit status`")
    ok = all(r.status_code == 200 for r in back) and back[2].json()["policy_id"] == pid \
        and back[1].json()["customer_id"] == cid
    return Check(name, ok, f"created {cid}, {pid}, {clid}; read back " + ", ".join(str(r.status_code) for r in back),
                 "the services disagree about ids; `labkit logs claims`")


def verify(settings: Settings | None = None) -> list[Check]:
    settings = settings or get_settings()
    checks = [check_redis(settings)]
    checks += [check_service(settings, name) for name in SERVICE_NAMES]
    with gateway_client(settings, timeout=5) as client:
        checks += [check_route(client, resource) for resource in ROUTES]
        checks.append(check_workflow(client))
    return checks
