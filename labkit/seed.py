"""``labkit seed``: deterministic sample data, loaded through the services' own APIs.

Through the APIs (not into the SQLite files) because each service owns its data: the same validation,
ids and (in later lessons) events apply as for any other client. The same seed gives the same data every
time: 300 customers, 1,000 policies, 400 claims at various stages.
"""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta

import httpx

from services.core.settings import Settings, get_settings

from .auth import ServiceAuth

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken", "Radia",
         "Tim", "Katherine", "Dennis", "Hedy", "Linus", "Sophie", "Niklaus", "Annie", "Guido"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Hamilton",
        "Thompson", "Perlman", "Berners-Lee", "Johnson", "Ritchie", "Lamarr", "Torvalds", "Wilson", "Wirth",
        "Easley", "van Rossum"]
DAMAGE = ["Rear-ended at a traffic light", "Hail damage to the roof", "Burst pipe in the kitchen",
          "Windscreen cracked by gravel", "Storm blew down the fence", "Theft of a bicycle from the garage",
          "Water damage from the flat upstairs", "Scratched door in a car park", "Lightning strike on the barn"]
PREMIUM = {"auto": (40_000, 180_000), "home": (30_000, 150_000), "life": (20_000, 300_000)}
COVERAGE = {"auto": (1_000_000, 5_000_000), "home": (10_000_000, 90_000_000), "life": (5_000_000, 100_000_000)}


def sample_data(seed: int = 42, customers: int = 300, policies: int = 1000, claims: int = 400) -> dict:
    rnd = random.Random(seed)
    people = []
    for i in range(customers):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        born = date(1940, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 62))
        people.append({"name": f"{first} {last}",
                       "email": f"{first}.{last}.{i + 1}@example.com".lower().replace(" ", ""),
                       "date_of_birth": born.isoformat(),
                       "risk_tier": rnd.choices(["low", "medium", "high"], weights=[5, 4, 1])[0]})
    cover = []
    for _ in range(policies):
        product = rnd.choice(list(PREMIUM))
        start = date(2025, 1, 1) + timedelta(days=rnd.randrange(0, 600))
        cover.append({"customer_index": rnd.randrange(customers), "product": product,
                      "premium_cents": rnd.randrange(*PREMIUM[product], 100),
                      "coverage_cents": rnd.randrange(*COVERAGE[product], 10_000),
                      "start_date": start.isoformat(), "end_date": (start + timedelta(days=365)).isoformat()})
    incidents = []
    for _ in range(claims):
        incidents.append({"policy_index": rnd.randrange(policies), "amount_cents": rnd.randrange(5_000, 900_000, 100),
                          "description": rnd.choice(DAMAGE),
                          "path": rnd.choices([[], ["under_review"], ["under_review", "approved"],
                                               ["under_review", "rejected"], ["under_review", "approved", "paid"]],
                                              weights=[4, 2, 2, 1, 2])[0]})
    return {"customers": people, "policies": cover, "claims": incidents}


def _post(client: httpx.Client, url: str, body: dict) -> dict:
    response = client.post(url, json=body)
    response.raise_for_status()
    return response.json()


def _move(client: httpx.Client, claims_url: str, claim_id: str, step: str) -> dict:
    """One lifecycle step of a seeded claim. The claims worker may take the same step first (it moves risky
    claims to ``under_review`` as soon as their event arrives): then the claims service answers 409 — exactly
    one of two identical changes wins — and the claim is already where the seed wanted it."""
    for _ in range(3):
        response = client.post(f"{claims_url}/claims/{claim_id}/status", json={"status": step, "note": "seeded"})
        if response.status_code != 409 or response.json()["error"]["code"] not in ("already_in_status",
                                                                                    "concurrent_change"):
            response.raise_for_status()
            return response.json()
        current = client.get(f"{claims_url}/claims/{claim_id}")
        current.raise_for_status()
        if current.json()["status"] == step:
            return current.json()
    response.raise_for_status()
    return response.json()


def load(settings: Settings, data: dict) -> dict:
    """Post the sample data in order, so ids are deterministic: CUS-000001 is always the first customer."""
    customer, policy, claims = (settings.url_of(s) for s in ("customer", "policy", "claims"))
    # Not traced (lesson 10): every write would be, and 1,700 traces of sample data would cost the services
    # CPU and rotate a learner's own traces out of the span files. One trace id, flag "not sampled": the
    # services follow a caller's flag, and their log lines of the seed still share that id.
    untraced = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"}
    with httpx.Client(timeout=30, auth=ServiceAuth(settings), headers=untraced) as client:
        first = client.get(f"{customer}/customers/CUS-000001")
        if first.status_code == 200 and first.json()["email"] == data["customers"][0]["email"]:
            return {"skipped": True, "reason": "the sample data is already loaded"}
        people = [_post(client, f"{customer}/customers", body) for body in data["customers"]]
        cover = [_post(client, f"{policy}/policies",
                       {k: v for k, v in p.items() if k != "customer_index"}
                       | {"customer_id": people[p["customer_index"]]["id"]})
                 for p in data["policies"]]
        made = []
        for c in data["claims"]:
            pol = cover[c["policy_index"]]
            claim = _post(client, f"{claims}/claims", {"policy_id": pol["id"], "description": c["description"],
                                                        "amount_cents": min(c["amount_cents"], pol["coverage_cents"])})
            for step in c["path"]:
                claim = _move(client, claims, claim["id"], step)
            made.append(claim)
    return {"customers": len(people), "policies": len(cover), "claims": len(made), "skipped": False}


def seed(settings: Settings | None = None, **sizes) -> dict:
    """Load the sample data unless it is already there. Returns what was created (or why it skipped)."""
    return load(settings or get_settings(), sample_data(**sizes))
