"""Brute-force protection for logins: failed attempts counted in Redis, per account and per client.

Two counters, because attackers come two ways: many passwords against one account (the account counter
stops it) and one password against many accounts from one address (the client counter stops it).
Each counter is a fixed window: the first failure starts it with a TTL, later failures only count.

Once a counter is over its limit, logins are refused with 429 and ``Retry-After`` = the window's remaining
TTL — *before* the password is even checked, so a correct guess during the lockout does not reset the
count early and does not confirm the password either.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from services.core import keys

# KEYS[1] = counter. ARGV = window_s. Count one failure; the first one starts the window.
_COUNT_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class Lockout:
    locked: bool
    retry_after_s: int = 0
    scope: str = ""


async def check_lockout(r: aioredis.Redis, username: str, client: str, max_account: int,
                        max_client: int) -> Lockout:
    """Is either counter at its limit? (Called before the password is verified.)"""
    async with r.pipeline(transaction=False) as pipe:
        for scope, who in (("account", username), ("client", client)):
            pipe.get(keys.login_attempts(scope, who))
            pipe.ttl(keys.login_attempts(scope, who))
        account, account_ttl, by_client, client_ttl = await pipe.execute()
    if account and int(account) >= max_account:
        return Lockout(True, max(1, account_ttl), "account")
    if by_client and int(by_client) >= max_client:
        return Lockout(True, max(1, client_ttl), "client")
    return Lockout(False)


async def record_failure(r: aioredis.Redis, username: str, client: str, window_s: int) -> None:
    for scope, who in (("account", username), ("client", client)):
        await r.eval(_COUNT_FAILURE, 1, keys.login_attempts(scope, who), window_s)


async def record_success(r: aioredis.Redis, username: str) -> None:
    """A successful login (only possible when not locked) clears the account's failures."""
    await r.delete(keys.login_attempts("account", username))
