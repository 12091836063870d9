"""The fast path for cached reads (``services/platform/cached_read.py``) answers exactly as the route would.

Each service runs twice here on the session lab's Redis: the lab's instance (fast path on, the default) and
one started beside it with ``LAB_FAST_READS=0`` (every request through FastAPI and the route). The same
requests go to both — a hit, a miss, an unknown id (and its cached "does not exist"), someone else's
record, one's own, no identity, a forged one, a replayed one, an id spelled wrong, a turned fault knob —
and status, body and headers must be the same (all but ``date``, ``x-request-id`` and ``x-trace-id``, which differ by nature:
the last is there only on a request the sampler picked, lesson 10).
"""

from __future__ import annotations

import httpx
import pytest

from services.core import keys
from services.patterns.identity import HEADER, sign_identity

ENTITIES = {  # service: (path prefix, kind, the id of an entity that exists, a well-spelled unknown id)
    "policy": ("/policies/", "policy"),
    "claims": ("/claims/", "claim"),
    "customer": ("/customers/", "customer"),
}
DIFFER_BY_NATURE = {"date", "x-request-id", "x-trace-id"}  # x-trace-id: on the 1 read in 100 that is traced


@pytest.fixture(scope="module")
def twins(lab):
    """{service: (fast base url, route-only base url)}."""
    started, urls = [], {}
    try:
        for service in ENTITIES:
            proc, port = lab.start_beside(service, name=f"{service}-no-fast-reads", LAB_FAST_READS="0")
            started.append(proc)
            urls[service] = (lab.settings.url_of(service), f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            proc.wait(timeout=15)


@pytest.fixture
def records(api, new_claim):
    """A claim (with its policy and customer) and a second customer's claim: someone else's records."""
    mine, theirs = new_claim(), new_claim()
    return {"claim": mine, "other_claim": theirs}


def ids_of(claim: dict) -> dict[str, str]:
    return {"policy": claim["policy_id"], "claim": claim["id"], "customer": claim["customer_id"]}


def labkit_identity(settings, service: str, **identity) -> dict[str, str]:
    """A reusable header from the lab's tools (no nonce): the same one can go to both instances."""
    claims = {"sub": "test", "roles": ["system"]} | identity
    return {HEADER: sign_identity(claims, settings.identity_key("labkit", service), issuer="labkit",
                                  audience=service, once=False, lifetime_s=60)}


def one_time_identity(settings, service: str, path: str) -> dict[str, str]:
    """What the gateway sends: bound to one method and path, with a nonce — valid once."""
    return {HEADER: sign_identity({"sub": "user:alice", "roles": ["agent"]}, settings.identity_key("gateway", service),
                                  issuer="gateway", audience=service, method="GET", path=path)}


def comparable(response: httpx.Response) -> tuple:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in DIFFER_BY_NATURE)
    return response.status_code, response.content, headers


def both(urls: tuple[str, str], path: str, headers: dict | None, before=lambda: None) -> tuple[httpx.Response, ...]:
    answers = []
    for base in urls:
        before()
        answers.append(httpx.get(base + path, headers=headers, timeout=10))
    return tuple(answers)


def assert_same(fast: httpx.Response, route: httpx.Response, status: int, x_cache: str | None = None) -> None:
    assert fast.status_code == status, fast.text
    assert comparable(fast) == comparable(route)
    assert fast.headers.get("x-cache") == x_cache


@pytest.mark.parametrize("service", ENTITIES)
def test_a_hit_a_miss_and_a_cached_absence_answer_the_same(twins, records, settings, r, service):
    prefix, kind = ENTITIES[service]
    entity_id = ids_of(records["claim"])[kind]
    path, who = prefix + entity_id, labkit_identity(settings, service)
    drop_copy = lambda: r.delete(keys.cache_entity(kind, entity_id))  # noqa: E731

    assert_same(*both(twins[service], path, who, before=drop_copy), 200, "MISS")
    assert_same(*both(twins[service], path, who), 200, "HIT")
    assert both(twins[service], path, who)[0].json()["id"] == entity_id

    unknown = f"{entity_id[:4]}{999_990 + len(service):06d}"
    r.delete(keys.cache_entity(kind, unknown))
    first = both(twins[service], prefix + unknown, who)  # the first fills a cached "does not exist"
    assert first[0].status_code == first[1].status_code == 404
    assert r.get(keys.cache_entity(kind, unknown)) == "null"
    assert_same(*both(twins[service], prefix + unknown, who), 404)


@pytest.mark.parametrize("service", ENTITIES)
def test_someone_elses_record_looks_like_none_and_ones_own_is_served(twins, records, settings, r, service):
    prefix, kind = ENTITIES[service]
    mine, theirs = ids_of(records["claim"]), ids_of(records["other_claim"])
    customer = labkit_identity(settings, service, sub="customer", roles=["customer"],
                               customer_id=mine["customer"])
    drop_copies = lambda: r.delete(keys.cache_entity(kind, mine[kind]), keys.cache_entity(kind, theirs[kind]))  # noqa: E731
    for before, x_cache in ((drop_copies, "MISS"), (lambda: None, "HIT")):
        assert_same(*both(twins[service], prefix + theirs[kind], customer, before), 404)
        assert_same(*both(twins[service], prefix + mine[kind], customer, before), 200, x_cache)
    no_record = labkit_identity(settings, service, sub="customer", roles=["customer"])  # linked to no record
    assert_same(*both(twins[service], prefix + mine[kind], no_record), 404)


@pytest.mark.parametrize("service", ENTITIES)
def test_no_forged_or_replayed_identity_and_a_misspelled_id_are_refused_the_same(twins, records, settings, service):
    prefix, kind = ENTITIES[service]
    entity_id = ids_of(records["claim"])[kind]
    path = prefix + entity_id
    both(twins[service], path, labkit_identity(settings, service))  # the copy is there: the fast path would hit
    assert_same(*both(twins[service], path, None), 401)
    forged = labkit_identity(settings, service)
    forged[HEADER] = forged[HEADER][:-4] + ("0000" if not forged[HEADER].endswith("0000") else "1111")
    assert_same(*both(twins[service], path, forged), 401)
    other_service = next(s for s in ENTITIES if s != service)
    assert_same(*both(twins[service], path, labkit_identity(settings, other_service)), 401)
    assert_same(*both(twins[service], prefix + entity_id.lower(), labkit_identity(settings, service)), 422)

    for base in twins[service]:  # a header the gateway signed is good for one request, wherever it is checked
        once = one_time_identity(settings, service, path)
        first = httpx.get(base + path, headers=once, timeout=10)
        again = httpx.get(base + path, headers=once, timeout=10)
        assert (first.status_code, again.status_code) == (200, 401), base


def test_a_turned_fault_knob_is_applied_on_the_fast_path_too(twins, records, settings):
    path = "/policies/" + records["claim"]["policy_id"]
    who = labkit_identity(settings, "policy")
    both(twins["policy"], path, who)  # cached
    try:
        for base in twins["policy"]:
            assert httpx.put(base + "/admin/knobs", json={"error_rate": 1.0}, headers=who, timeout=10).is_success
        assert_same(*both(twins["policy"], path, who), 500)
    finally:
        for base in twins["policy"]:
            httpx.put(base + "/admin/knobs", json={"error_rate": 0.0}, headers=who, timeout=10)


def test_a_hit_on_the_fast_path_is_counted_once(twins, records, settings):
    fast, _ = twins["policy"]
    path = "/policies/" + records["claim"]["policy_id"]
    who = labkit_identity(settings, "policy")
    assert httpx.get(fast + path, headers=who, timeout=10).status_code == 200  # cached now
    before = httpx.get(fast + "/stats", headers=who, timeout=10).json()
    for _ in range(5):
        assert httpx.get(fast + path, headers=who, timeout=10).headers["x-cache"] == "HIT"
    after = httpx.get(fast + "/stats", headers=who, timeout=10).json()
    hits = lambda stats: stats["by_kind"]["policy"]["hits"]  # noqa: E731
    assert hits(after) - hits(before) == 5
    assert after["by_kind"]["policy"]["misses"] == before["by_kind"]["policy"]["misses"]
