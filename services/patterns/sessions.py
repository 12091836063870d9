"""Distributed sessions: the session lives in Redis, so any instance of any service can read it.

A session is a hash at ``lab:session:<sha256 of the id>``:

    user_id, username, roles, customer_id, created_at, last_seen, expires_at (absolute, epoch seconds)

* The id (the cookie's value) is 256 bits from the OS's CSPRNG (``secrets``): unguessable, never derived
  from the user. It has one exact shape (43 url-safe characters); anything else is "no session" before it
  comes near Redis, so no crafted value (braces, ``*``, ``:``) ever reaches a key name.
* **The key is a hash of the id, not the id.** Anyone who can list keys (``SCAN``) or watch them being used
  (``CLIENT TRACKING``) sees only digests, and a digest is not a cookie: SHA-256 cannot be run backwards.
  Only the gateway's Redis user may touch these keys at all (``services/core/acl.py``).
* **Idle timeout (sliding)**: every use pushes the key's TTL back to ``idle_s``. An idle session expires
  by itself — Redis deletes it, no sweeper needed.
* **Absolute timeout**: however active, a session ends at ``expires_at``; the TTL is never set past it.
* **Rotation**: at login and on any privilege change the old id is destroyed and a new one issued, so an
  id an attacker planted before login (session fixation) is worth nothing after it.
* ``lab:user-sessions:<user>`` keeps the digests of each user's sessions, for "my sessions" and "log out
  everywhere".

``touch`` is one Lua script because "check it exists, then refresh it" as two commands could re-create a
half session that a concurrent logout had just deleted.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from services.core import keys

# KEYS[1] = session hash; ARGV = now, idle_s. Returns the hash as a flat list, or {} if gone/expired.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local expires_at = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
local now = tonumber(ARGV[1])
if expires_at == nil or now >= expires_at then
  redis.call('DEL', KEYS[1])
  return {}
end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
local ttl = math.min(tonumber(ARGV[2]), expires_at - now)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.floor(ttl * 1000)))
return redis.call('HGETALL', KEYS[1])
"""


#: What ``new_session_id`` makes: 32 random bytes in url-safe base64, without padding.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def is_session_id(value: str | None) -> bool:
    return bool(value) and SESSION_ID.fullmatch(value) is not None


def session_digest(session_id: str) -> str:
    """What the key is named by: the SHA-256 of the id (hex). Fast on purpose — the id has 256 random bits,
    so nobody can guess ids to match a digest, and no slow password hash is needed."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def session_key(session_id: str) -> str:
    """The Redis key of the session whose cookie value is ``session_id``."""
    return keys.session(session_digest(session_id))


@dataclass(frozen=True)
class Session:
    id: str | None  # the cookie value; None for a session found through the user's index (only digests there)
    digest: str
    user_id: str
    username: str
    roles: tuple[str, ...]
    customer_id: str | None
    created_at: float
    last_seen: float
    expires_at: float

    @classmethod
    def from_hash(cls, session_id: str | None, digest: str, fields: dict) -> "Session":
        return cls(session_id, digest, fields["user_id"], fields["username"],
                   tuple(r for r in fields.get("roles", "").split(",") if r), fields.get("customer_id") or None,
                   float(fields["created_at"]), float(fields["last_seen"]), float(fields["expires_at"]))

    def public(self) -> dict:
        """What a user may see of a session (never the id of another one)."""
        return {"user_id": self.user_id, "username": self.username, "roles": list(self.roles),
                "customer_id": self.customer_id, "created_at": self.created_at, "last_seen": self.last_seen,
                "expires_at": self.expires_at}


def new_session_id() -> str:
    return secrets.token_urlsafe(32)  # 32 bytes = 256 bits


async def create_session(r: aioredis.Redis, user: dict, idle_s: float, absolute_s: float,
                         now: float | None = None) -> Session:
    now = time.time() if now is None else now
    session_id = new_session_id()
    digest = session_digest(session_id)
    fields = {"user_id": user["user_id"], "username": user["username"], "roles": ",".join(user["roles"]),
              "customer_id": user.get("customer_id") or "", "created_at": now, "last_seen": now,
              "expires_at": now + absolute_s}
    async with r.pipeline(transaction=False) as pipe:
        pipe.hset(keys.session(digest), mapping=fields)
        pipe.pexpire(keys.session(digest), int(min(idle_s, absolute_s) * 1000))
        pipe.sadd(keys.user_sessions(user["user_id"]), digest)
        pipe.expire(keys.user_sessions(user["user_id"]), int(absolute_s) + 60)
        await pipe.execute()
    return Session.from_hash(session_id, digest, {k: str(v) for k, v in fields.items()})


async def touch_session(r: aioredis.Redis, session_id: str, idle_s: float, now: float | None = None) -> Session | None:
    """Validate and slide: the session if it is alive (its idle TTL renewed), else None.

    An id that is not of the generated shape is no session, and costs no round trip."""
    if not is_session_id(session_id):
        return None
    now = time.time() if now is None else now
    digest = session_digest(session_id)
    flat = await r.eval(_TOUCH, 1, keys.session(digest), now, idle_s)
    if not flat:
        return None
    return Session.from_hash(session_id, digest, dict(zip(flat[::2], flat[1::2])))


async def destroy_session(r: aioredis.Redis, session_id: str, user_id: str | None = None) -> None:
    """Log out the session whose cookie value is ``session_id``."""
    await _destroy(r, session_digest(session_id), user_id)


async def _destroy(r: aioredis.Redis, digest: str, user_id: str | None) -> None:
    await r.delete(keys.session(digest))
    if user_id:
        await r.srem(keys.user_sessions(user_id), digest)


async def rotate_session(r: aioredis.Redis, old: Session, idle_s: float, absolute_s: float,
                         roles: tuple[str, ...] | None = None) -> Session:
    """A new id for the same user (optionally with new roles); the old id stops working at once."""
    user = {"user_id": old.user_id, "username": old.username, "roles": roles or old.roles,
            "customer_id": old.customer_id}
    fresh = await create_session(r, user, idle_s, absolute_s)
    await _destroy(r, old.digest, old.user_id)
    return fresh


async def list_sessions(r: aioredis.Redis, user_id: str) -> list[Session]:
    """The user's live sessions (known by digest only: ``id`` is None); expired ones are pruned from the index."""
    digests = sorted(await r.smembers(keys.user_sessions(user_id)))
    async with r.pipeline(transaction=False) as pipe:
        for digest in digests:
            pipe.hgetall(keys.session(digest))
        hashes = await pipe.execute()
    alive, dead = [], []
    for digest, fields in zip(digests, hashes):
        (alive if fields else dead).append((digest, fields))
    if dead:
        await r.srem(keys.user_sessions(user_id), *[digest for digest, _ in dead])
    return [Session.from_hash(None, digest, fields) for digest, fields in alive]


async def destroy_all_sessions(r: aioredis.Redis, user_id: str) -> int:
    """Log out everywhere. Returns how many sessions ended."""
    digests = list(await r.smembers(keys.user_sessions(user_id)))
    # One DEL per key (pipelined, one round trip): each session key lives in its own hash slot on a Cluster.
    async with r.pipeline(transaction=False) as pipe:
        for digest in digests:
            pipe.delete(keys.session(digest))
        pipe.delete(keys.user_sessions(user_id))
        results = await pipe.execute()
    return sum(results[:-1])
