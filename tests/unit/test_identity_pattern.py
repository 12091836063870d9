"""The signed identity header: accepted once, for the request it was signed for; refused otherwise."""

import pytest

from services.core import credentials
from services.patterns.identity import LIFETIME_S, ReplayGuard, sign_identity, verify_identity

MASTER = "master-secret-for-tests"
ALICE = {"sub": "u-alice", "roles": ["customer"], "customer_id": "CUS-000001"}


def key_of(issuer, audience):
    return credentials.identity_key(MASTER, issuer, audience)


def gateway_header(audience="policy", method="GET", path="/policies/POL-000001", instance="policy-1", **kw):
    return sign_identity(ALICE, key_of("gateway", audience), issuer="gateway", audience=audience, method=method,
                         path=path, instance=instance, **kw)


def check(header, audience="policy", method="GET", path="/policies/POL-000001", instance="policy-1", guard=None,
          now=None, keys=key_of):
    return verify_identity(header, keys, audience=audience, method=method, path=path, instance=instance,
                           guard=guard if guard is not None else ReplayGuard(), now=now)


def test_a_signed_identity_verifies_for_its_own_request():
    identity = check(gateway_header())
    assert identity["sub"] == "u-alice" and identity["roles"] == ["customer"] and identity["iss"] == "gateway"


@pytest.mark.parametrize("elsewhere", [dict(audience="claims"), dict(method="PUT"), dict(path="/admin/knobs"),
                                       dict(path="/policies/POL-000002"), dict(instance="policy-2")])
def test_a_header_is_worth_nothing_elsewhere(elsewhere):
    """Another service, method, path or instance: refused (and on claims, no key fits a policy header)."""
    assert check(gateway_header(), **elsewhere) is None


def test_a_header_is_accepted_once():
    guard, header = ReplayGuard(), gateway_header()
    assert check(header, guard=guard) is not None
    assert check(header, guard=guard) is None


def test_an_expired_or_overlong_header_is_refused():
    header = gateway_header(now=1_000_000)
    assert check(header, now=1_000_000 + LIFETIME_S - 1) is not None
    assert check(header, now=1_000_000 + LIFETIME_S + 0.01) is None
    assert check(gateway_header(lifetime_s=3600, now=1_000_000), now=1_000_001) is None


def test_a_forged_or_altered_identity_is_refused():
    header = gateway_header()
    version, payload, mac = header.split(".")
    mallory = sign_identity(ALICE, "guessed-key", issuer="gateway", audience="policy", method="GET",
                            path="/policies/POL-000001", instance="policy-1")
    assert check(mallory) is None
    other_payload = gateway_header(path="/policies/POL-000002").split(".")[1]
    assert check(".".join([version, other_payload, mac])) is None


def test_a_peer_speaks_only_for_itself():
    key = key_of("claims", "policy")
    own = sign_identity({"sub": "service:claims", "roles": ["system"]}, key, issuer="claims", audience="policy",
                        method="GET", path="/policies/POL-000001")
    pretends = sign_identity(ALICE, key, issuer="claims", audience="policy", method="GET", path="/policies/POL-000001")
    assert check(own)["sub"] == "service:claims"
    assert check(pretends) is None


def test_a_service_holds_no_key_that_opens_another_service():
    """What labkit gives the policy process: with none of it can an identity for claims be made."""
    held = credentials.identity_keys_for(MASTER, "policy")
    assert not any(pair.endswith("->claims") for pair in held)
    for pair, key in held.items():
        issuer = pair.split("->")[0]
        for sub in ("labkit", "service:policy", f"service:{issuer}"):
            forged = sign_identity({"sub": sub, "roles": ["system"]}, key, issuer=issuer, audience="claims",
                                   method="PUT", path="/admin/knobs")
            assert check(forged, audience="claims", method="PUT", path="/admin/knobs") is None


def test_garbage_is_refused_without_an_exception():
    for junk in (None, "", "v2", "v2.a.b.c", "x" * 5000, "v2.!!!.0", "v2.e30.abc", "v1.e30.1.abc"):
        assert check(junk) is None
