"""The signed identity header: accepted when genuine and fresh, refused otherwise."""

from services.patterns.identity import sign_identity, verify_identity

SECRET = "s3cret-for-tests"
ALICE = {"sub": "u-alice", "roles": ["customer"], "customer_id": "CUS-000001"}


def test_a_signed_identity_verifies():
    assert verify_identity(sign_identity(ALICE, SECRET), SECRET) == ALICE


def test_a_forged_or_altered_identity_is_refused():
    header = sign_identity(ALICE, SECRET)
    version, payload, stamp, mac = header.split(".")
    mallory = sign_identity({"sub": "u-alice", "roles": ["agent"]}, "guessed-secret")
    assert verify_identity(mallory, SECRET) is None
    other_payload = sign_identity({"sub": "u-bob", "roles": ["agent"]}, SECRET).split(".")[1]
    assert verify_identity(".".join([version, other_payload, stamp, mac]), SECRET) is None
    assert verify_identity(".".join([version, payload, str(int(stamp) + 1), mac]), SECRET) is None


def test_a_stale_identity_is_refused():
    header = sign_identity(ALICE, SECRET, now=1_000_000)
    assert verify_identity(header, SECRET, max_age_s=60, now=1_000_030) == ALICE
    assert verify_identity(header, SECRET, max_age_s=60, now=1_000_061) is None


def test_garbage_is_refused_without_an_exception():
    for junk in (None, "", "v1", "v1.a.b.c", "x" * 5000, "v1.!!!.1.0", "v2.e30.1.abc"):
        assert verify_identity(junk, SECRET) is None
