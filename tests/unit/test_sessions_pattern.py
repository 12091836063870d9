"""Sessions, passwords and the login guard against the real server."""

import asyncio

import pytest

from services.core import keys
from services.patterns import login_guard, sessions
from services.patterns.passwords import hash_password, verify_password

from redis_async import run  # the shared async-client helper (tests/unit/redis_async.py)

USER = {"user_id": "u-test-1", "username": "test.user", "roles": ("customer",), "customer_id": "CUS-000001"}


def test_password_hash_is_salted_and_verifies():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first) and not verify_password("wrong", first)
    assert not verify_password("correct horse", "garbage")


def test_session_id_is_256_bits_and_hash_has_the_fields(redis_url):
    async def body(r):
        s = await sessions.create_session(r, USER, idle_s=30, absolute_s=3600, now=1000.0)
        stored = await r.hgetall(sessions.session_key(s.id))
        ttl = await r.pttl(sessions.session_key(s.id))
        await sessions.destroy_session(r, s.id, USER["user_id"])
        return s, stored, ttl
    s, stored, ttl = run(redis_url, body)
    assert len(s.id) >= 43  # 32 bytes urlsafe-base64
    assert stored["user_id"] == "u-test-1" and stored["roles"] == "customer"
    assert float(stored["expires_at"]) == 4600.0
    assert 0 < ttl <= 30_000


def test_touch_slides_the_idle_ttl_but_never_past_the_absolute_cap(redis_url):
    async def body(r):
        s = await sessions.create_session(r, USER, idle_s=30, absolute_s=100)
        await r.pexpire(sessions.session_key(s.id), 5_000)  # pretend it has been idle a while
        touched = await sessions.touch_session(r, s.id, idle_s=30)
        slid = await r.pttl(sessions.session_key(s.id))
        capped = await sessions.touch_session(r, s.id, idle_s=30, now=s.created_at + 90)  # 10 s left
        capped_ttl = await r.pttl(sessions.session_key(s.id))
        expired = await sessions.touch_session(r, s.id, idle_s=30, now=s.created_at + 101)
        return touched, slid, capped, capped_ttl, expired, await r.exists(sessions.session_key(s.id))
    touched, slid, capped, capped_ttl, expired, exists = run(redis_url, body)
    assert touched is not None and 25_000 < slid <= 30_000
    assert capped is not None and capped_ttl <= 10_000
    assert expired is None and exists == 0


def test_touch_does_not_resurrect_a_destroyed_session(redis_url):
    async def body(r):
        s = await sessions.create_session(r, USER, idle_s=30, absolute_s=100)
        await sessions.destroy_session(r, s.id, USER["user_id"])
        return await sessions.touch_session(r, s.id, idle_s=30), await r.exists(sessions.session_key(s.id))
    assert run(redis_url, body) == (None, 0)


def test_rotation_kills_the_old_id(redis_url):
    async def body(r):
        old = await sessions.create_session(r, USER, idle_s=30, absolute_s=100)
        new = await sessions.rotate_session(r, old, idle_s=30, absolute_s=100, roles=("customer", "agent"))
        return old, new, await sessions.touch_session(r, old.id, 30), await sessions.touch_session(r, new.id, 30)
    old, new, old_after, new_after = run(redis_url, body)
    assert new.id != old.id and old_after is None
    assert new_after.roles == ("customer", "agent")


def test_list_and_log_out_everywhere(redis_url):
    user = USER | {"user_id": "u-test-everywhere"}

    async def body(r):
        made = [await sessions.create_session(r, user, 30, 100) for _ in range(3)]
        listed = await sessions.list_sessions(r, user["user_id"])
        ended = await sessions.destroy_all_sessions(r, user["user_id"])
        left = [await sessions.touch_session(r, s.id, 30) for s in made]
        return made, listed, ended, left
    made, listed, ended, left = run(redis_url, body)
    assert {s.digest for s in listed} == {s.digest for s in made}
    assert all(s.id is None for s in listed)  # the index keeps digests: nothing in it is a cookie
    assert ended == 3 and left == [None, None, None]


@pytest.mark.parametrize("scope", ["account", "client"])
def test_login_guard_locks_after_the_limit_and_says_how_long(redis_url, scope):
    name, client = f"victim-{scope}", f"10.0.0.{1 if scope == 'account' else 2}"
    limits = {"max_account": 3, "max_client": 5} if scope == "account" else {"max_account": 99, "max_client": 3}

    async def body(r):
        await r.delete(keys.login_attempts("account", name), keys.login_attempts("client", client))
        allowed = [await login_guard.reserve_attempt(r, name, client, **limits, window_s=60) for _ in range(3)]
        after = await login_guard.reserve_attempt(r, name, client, **limits, window_s=60)
        await r.delete(keys.login_attempts("account", name), keys.login_attempts("client", client))
        return allowed, after
    allowed, after = run(redis_url, body)
    assert not any(a.locked for a in allowed)
    assert after.locked and after.scope == scope and 0 < after.retry_after_s <= 60


@pytest.mark.parametrize("scope", ["account", "client"])
def test_concurrent_attempts_never_check_more_than_the_limit(redis_url, scope):
    """50 logins at once against a limit of 5: exactly 5 may have their password checked, per account
    (one account, one address) and per client (one address, 50 accounts)."""
    client = f"10.0.1.{1 if scope == 'account' else 2}"
    names = [f"racer-{scope}"] * 50 if scope == "account" else [f"racer-{scope}-{i}" for i in range(50)]
    limits = {"max_account": 5, "max_client": 99} if scope == "account" else {"max_account": 99, "max_client": 5}

    async def body(r):
        counters = [keys.login_attempts("account", n) for n in set(names)] + [keys.login_attempts("client", client)]
        await r.delete(*counters)
        try:
            return await asyncio.gather(*(login_guard.reserve_attempt(r, n, client, **limits, window_s=60)
                                          for n in names))
        finally:
            await r.delete(*counters)
    outcomes = run(redis_url, body)
    assert sum(not o.locked for o in outcomes) == 5
    assert {o.scope for o in outcomes if o.locked} == {scope}


def test_a_success_gives_back_only_its_own_attempt(redis_url):
    """Failures stay counted after a success: a lucky guess must not reopen the door for queued guesses."""
    name, client = "victim-success", "10.0.2.1"
    limits = {"max_account": 3, "max_client": 99, "window_s": 60}

    async def body(r):
        counters = keys.login_attempts("account", name), keys.login_attempts("client", client)
        await r.delete(*counters)
        for _ in range(2):  # two wrong passwords: their reservations stay
            await login_guard.reserve_attempt(r, name, client, **limits)
        await login_guard.reserve_attempt(r, name, client, **limits)
        await login_guard.release_attempt(r, name, client)  # the third was right
        counts = [int(await r.get(key)) for key in counters]
        third = await login_guard.reserve_attempt(r, name, client, **limits)
        fourth = await login_guard.reserve_attempt(r, name, client, **limits)
        await r.delete(*counters)
        await login_guard.release_attempt(r, name, client)  # on an expired counter: creates nothing
        left = await r.exists(*counters)
        return counts, third, fourth, left
    counts, third, fourth, left = run(redis_url, body)
    assert counts == [2, 2]
    assert not third.locked and fourth.locked and fourth.scope == "account"
    assert left == 0


def test_the_key_is_a_digest_of_the_cookie_never_the_cookie(redis_url):
    """Listing keys must reveal nothing usable: the session's key names the SHA-256 of the id."""
    async def body(r):
        s = await sessions.create_session(r, USER, 30, 100)
        names = [name async for name in r.scan_iter(match=keys.session("*"), count=1000)]
        index = await r.smembers(keys.user_sessions(USER["user_id"]))
        await sessions.destroy_session(r, s.id, USER["user_id"])
        return s, names, index
    s, names, index = run(redis_url, body)
    assert sessions.session_key(s.id) in names
    assert not any(s.id in name for name in names) and s.id not in index
    assert s.digest in index and len(s.digest) == 64


@pytest.mark.parametrize("crafted", ["", "short", "x" * 43 + "{", "a" * 42 + "*", "a" * 42 + ":", "a" * 44,
                                     "{lab:stream:policies}" + "a" * 22, "a" * 40 + "%2F", "ä" * 43, None])
def test_anything_but_a_generated_id_is_no_session(redis_url, crafted):
    async def body(r):
        return await sessions.touch_session(r, crafted, 30)
    assert not sessions.is_session_id(crafted)
    assert run(redis_url, body) is None


def test_generated_ids_have_the_strict_shape():
    assert all(sessions.is_session_id(sessions.new_session_id()) for _ in range(200))
