"""Brute-force protection for logins: password checks counted in Redis, per account and per client.

Two counters, because attackers come two ways: many passwords against one account (the account counter
stops it) and one password against many accounts from one address (the client counter stops it).
Each counter is a fixed window: the first attempt starts it with a TTL, later ones only count.

**An attempt is counted before its password is checked, atomically.** A guard that first *reads* the
counter and counts a failure only after the slow (scrypt) check loses a race: 40 guesses sent at once all
read "no failures yet", all get checked, and the limit means nothing. So each login first *reserves* a
check with one small Lua script per counter: it increments only while the counter is below its limit.
Whatever the concurrency, at most ``limit`` passwords per account and per client are ever checked in a
window; every other attempt gets 429 with ``Retry-After`` = the window's remaining TTL, its password never
looked at — so a correct guess during a lockout neither gets in nor confirms itself.

**What a success does: it gives back its own reservation, nothing more.** Failures stay counted until the
window ends. (Deleting the counter on success, as this module once did, let every guess queued behind a
lucky one through.) The price: someone who typed the wrong password four times and then the right one has
one mistake left until the window ends.

**Two keys, two scripts, client first.** An account and an address share no hash tag, so on a Cluster they
live in different slots and one script cannot touch both. The client's reservation is taken first (it is
the caller's own budget); if the account then refuses, the client's is given back — so a client spends
nothing on a locked account, and a client over its own limit never touches anyone's account counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from services.core import keys

# KEYS[1] = counter. ARGV = limit, window_s. Reserve one check if the counter is below the limit.
# Returns {1, count} when reserved, {0, ttl} when refused. The first reservation starts the window.
_RESERVE = """
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, redis.call('TTL', KEYS[1])} end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
"""

# KEYS[1] = counter. Give one reservation back; never below zero, never re-create an expired counter.
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Lockout:
    locked: bool
    retry_after_s: int = 0
    scope: str = ""


async def reserve_attempt(r: aioredis.Redis, username: str, client: str, max_account: int, max_client: int,
                          window_s: int) -> Lockout:
    """Count this attempt (client, then account) *before* the password is checked; locked = do not check."""
    client_key, account_key = keys.login_attempts("client", client), keys.login_attempts("account", username)
    reserved, value = await r.eval(_RESERVE, 1, client_key, max_client, window_s)
    if not reserved:
        return Lockout(True, max(1, int(value)), "client")
    reserved, value = await r.eval(_RESERVE, 1, account_key, max_account, window_s)
    if not reserved:
        await r.eval(_RELEASE, 1, client_key)  # no password was checked: the client spent nothing
        return Lockout(True, max(1, int(value)), "account")
    return Lockout(False)


async def release_attempt(r: aioredis.Redis, username: str, client: str) -> None:
    """After a successful login: give back this attempt's own reservations (failures stay counted)."""
    for scope, who in (("account", username), ("client", client)):
        await r.eval(_RELEASE, 1, keys.login_attempts(scope, who))
