"""Least privilege in Redis: one ACL user per service, allowed only its own keys and the event channels.

When labkit starts the lab's own server it creates these users (and gives ``default`` a password), and
every service connects as its own user. So the policy service *cannot* read a session or the claims
stream, whatever bug or injection it suffers — Redis refuses with NOPERM. With ``REDIS_URL`` pointing at
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

COMMANDS = ["+@all", "-@dangerous", "+client|setname", "+client|id", "+client|tracking"]


def username(service: str) -> str:
    return f"lab-{service}"


def password(settings: Settings, user: str) -> str:
    """Derived from the lab's secret, so every lab process can compute it and no file holds it."""
    return hmac.new(settings.shared_secret().encode(), f"redis-user:{user}".encode(), hashlib.sha256).hexdigest()[:32]


def _topic_keys(topic: str) -> list[str]:
    """A topic's stream, and every key that shares its hash tag (history, dedupe markers, dead letters)."""
    return [keys.stream(topic), f"{keys.PREFIX}:*{{{keys.stream(topic)}}}*"]


def key_patterns(service: str) -> list[str]:
    """Glob patterns of the keys ``service`` may touch, made by calling the key schema with ``*``."""
    shared = [
        keys.registry_prefix() + "*", keys.registry_index("*"),  # every instance registers (lesson 03)
        keys.stats(service, "*"),
        keys.cache_prefix() + "*", keys.cache_tags("*"),  # the cache is shared: any service may invalidate
        keys.cache_generation("*", "*"), keys.cache_lock("*", "*"),  # coherence bookkeeping (lesson 06)
    ]
    own = {
        "customer": _topic_keys("customers"),
        "policy": _topic_keys("policies"),
        "claims": _topic_keys("claims"),
        "worker": _topic_keys("claims") + [keys.processed("*", "*"), keys.risk_scores()],
        "gateway": [keys.session("*"), keys.user_sessions("*"), keys.login_attempts("*", "*"),
                    keys.rate_limit("*")],
    }
    return shared + own.get(service, [])


def rules(service: str) -> list[str]:
    return ["on", "resetkeys", "resetchannels", *(f"~{p}" for p in key_patterns(service)),
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
