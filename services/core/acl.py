"""Least privilege in Redis: one ACL user per service, allowed only its own keys and the event channels.

When labkit starts the lab's own server it creates these users (and gives ``default`` a password), and
every service connects as its own user — the only Redis credentials its process is given. So the policy
service *cannot* read a session or the claims stream, whatever bug or injection it suffers — Redis refuses
with NOPERM. Each pattern starts with a fixed key type, so no crafted name (braces, ``*``, ``:``) can make
one kind of key match another's rule (``tests/unit/test_acl_schema.py`` asks the server about every key the
schema can build). With ``REDIS_URL`` pointing at
your own server, ``labkit acl`` prints the same ``ACL SETUSER`` lines to apply there.

The patterns come from the key schema (``keys.py``), never typed twice. Everything a service may not
name is denied; ``-@dangerous`` removes KEYS, FLUSHALL, CONFIG, DEBUG, SHUTDOWN, CLIENT KILL and friends.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlsplit, urlunsplit

from . import keys
from .settings import Settings

#: Which event topic (stream) each service writes through its outbox.
TOPIC_OF = {"customer": "customers", "policy": "policies", "claims": "claims"}

#: ``-@dangerous`` removes KEYS, FLUSHALL, CONFIG, DEBUG, MONITOR, CLIENT KILL...; SCAN and RANDOMKEY go too:
#: they name keys whatever the user's key patterns (no service needs to list the keyspace).
COMMANDS = ["+@all", "-@dangerous", "-scan", "-randomkey", "+client|setname", "+client|id", "+client|tracking"]


def username(service: str) -> str:
    return f"lab-{service}"


def password(settings: Settings, user: str) -> str:
    """Derived from the lab's master secret: labkit computes it and hands each service only its own
    (inside its ``REDIS_URL``); the server reads them all from a 0600 ACL file in the run directory."""
    return hmac.new(settings.shared_secret().encode(), f"redis-user:{user}".encode(), hashlib.sha256).hexdigest()[:32]


def _topic_keys(topic: str) -> list[str]:
    """A topic's stream and the keys that carry its hash tag (history, dedupe markers, dead letters).

    Each pattern fixes the key *type* before the tag (``lab:history:{lab:stream:policies}:*``). The old
    ``lab:*{lab:stream:policies}*`` also matched ``lab:session:x{lab:stream:policies}`` — a session the
    policy service could write. A ``*`` only ever follows a fixed type prefix here.
    """
    return [keys.stream(topic), keys.subject_history(topic, "*"), keys.published(topic, "*"),
            keys.dead_letter(topic)]


#: Every service reads and writes the shared cache: a write in one service invalidates copies another
#: service made (claims drops a customer's overview; lesson 06's generations and locks). So a compromised
#: service can drop or poison cached copies — bounded by their TTL, never the system of record.
SHARED_CACHE = [keys.cache_prefix() + "*", keys.cache_tags("*"), keys.cache_generation("*", "*"),
                keys.cache_lock("*", "*")]

#: Where each service's own data lives, beyond the shared cache and its own registration.
OWN_KEYS = {
    "customer": _topic_keys("customers"),
    "policy": _topic_keys("policies"),
    "claims": _topic_keys("claims"),
    "worker": _topic_keys("claims") + [keys.processed("*", "*"), keys.risk_scores()],
    "gateway": [keys.session("*"), keys.user_sessions("*"), keys.login_attempts("*", "*"), keys.rate_limit("*")],
}


def key_patterns(service: str) -> list[str]:
    """Glob patterns of the keys ``service`` may read *and write*, made by calling the key schema with ``*``.

    Its registration only under its own name: a service that could write ``lab:registry:claims:*`` could
    announce itself as claims and receive claims' traffic (and the identities sent with it).
    """
    own_registration = [keys.registry_prefix(service) + "*", keys.registry_index(service), keys.stats(service, "*")]
    return own_registration + SHARED_CACHE + OWN_KEYS.get(service, [])


def read_only_patterns(service: str) -> list[str]:
    """Keys ``service`` may read but not write: every registration (the gateway routes by them, peers find
    each other through them — lesson 03). Valkey's ``%R~`` selector grants exactly that."""
    return [keys.registry_prefix() + "*", keys.registry_index("*")]


def rules(service: str) -> list[str]:
    return ["on", "resetkeys", "resetchannels", *(f"~{p}" for p in key_patterns(service)),
            *(f"%R~{p}" for p in read_only_patterns(service)),
            f"&{keys.channel('*')}", "&__redis__:invalidate", *COMMANDS]


def setuser_commands(settings: Settings, services) -> list[list[str]]:
    """``ACL SETUSER`` argument lists for every service user (labkit runs them; ``labkit acl`` prints them)."""
    return [[username(s), "reset", f">{password(settings, username(s))}", *rules(s)] for s in services]


def service_url(settings: Settings, service: str) -> str:
    """The lab's Redis URL with this service's own credentials in it."""
    parts = urlsplit(settings.redis_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(username(service))}:{quote(password(settings, username(service)))}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
