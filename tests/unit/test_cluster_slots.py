"""Every Lua script and every MULTI the services send touches one hash slot, so it runs on Redis Cluster.

A cluster refuses (``CROSSSLOT``) a script or a transaction whose keys live in different slots. Two checks:

1. every script the services define reaches keys only through ``KEYS[n]`` (a key built inside the script
   would be invisible to the cluster client, which routes by the keys it is given);
2. for every script and MULTI call site, the keys it is given — built with the key-schema functions the
   code itself calls, for ids of every shape — hash to one slot (``redis.crc.key_slot``, the cluster's own
   CRC16). A new ``eval``/``register_script``/``pipeline(transaction=True)`` in ``services/`` without an
   entry below fails the inventory test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from redis.crc import key_slot

from services.core import keys
from services.patterns import outbox

SERVICES = Path(__file__).resolve().parents[2] / "services"

IDS = ["POL-000001", "CUS-000300", "CLM-000042", "u-alice", "x{y}z"]
DIGEST = "9f" * 32


def _slots(key_list: list[str]) -> set[int]:
    return {key_slot(k.encode()) for k in key_list}


#: call site (file, the script or MULTI) -> the keys one call receives, for a sample id
CALL_SITES = {
    ("patterns/coherence.py", "FILL_IF_GENERATION"):
        lambda i: [keys.cache_entity("customer", i), keys.cache_generation("customer", i)],
    ("patterns/coherence.py", "RELEASE_LOCK"): lambda i: [keys.cache_lock("policy", i)],
    ("patterns/coherence.py", "BUMP_GENERATION"):
        lambda i: [keys.cache_generation("claim", i), keys.cache_entity("claim", i)],
    ("patterns/sessions.py", "_TOUCH"): lambda i: [keys.session(DIGEST)],
    ("patterns/login_guard.py", "_RESERVE"): lambda i: [keys.login_attempts("account", i)],
    ("patterns/login_guard.py", "_RELEASE"): lambda i: [keys.login_attempts("client", i)],
    ("patterns/ratelimit.py", "SLIDING_WINDOW_LUA"): lambda i: [keys.rate_limit(i)],
    ("patterns/outbox.py", "PUBLISH_ONCE"):
        lambda i: outbox._publish_args('{"id":"evt-1"}'.replace("evt-1", f"evt-{i}"), "claim.submitted", i,
                                       "claims", 60, 1000)["keys"],
    ("patterns/streams.py", "dead_letter MULTI"):
        lambda i: [keys.dead_letter("claims"), keys.stream("claims")],
}


@pytest.mark.parametrize("site", sorted(CALL_SITES), ids=lambda s: f"{s[0]}:{s[1]}")
@pytest.mark.parametrize("entity_id", IDS)
def test_each_call_sites_keys_share_one_slot(site, entity_id, monkeypatch):
    monkeypatch.setattr(outbox, "_event_id", lambda _json: f"evt-{entity_id}")
    assert len(_slots(CALL_SITES[site](entity_id))) == 1, CALL_SITES[site](entity_id)


def test_the_lock_and_the_copy_of_one_entity_share_a_slot_too():
    """Not one call, but the stampede lesson reads the copy right after taking the lock: same node."""
    for i in IDS:
        assert len(_slots([keys.cache_lock("policy", i), keys.cache_entity("policy", i),
                           keys.cache_versioned("policy", i, 7), keys.cache_tags(i)])) == 1


def _scripts() -> dict[tuple[str, str], str]:
    """Every module-level string in services/ that is a Lua script (it calls redis.call)."""
    found = {}
    for path in SERVICES.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) and "redis.call" in node.value.value:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[(str(path.relative_to(SERVICES)), target.id)] = node.value.value
    return found


def test_scripts_reach_keys_only_through_KEYS():
    for (module, name), lua in _scripts().items():
        for call in re.findall(r"redis\.call\(\s*'(\w+)'\s*,\s*([^,)]+)", lua):
            command, first = call
            if command.upper() in ("PUBLISH", "TIME"):  # a channel, not a key; no key at all
                continue
            assert first.startswith("KEYS[") or re.fullmatch(r"[a-z_]+", first), \
                f"{module}:{name}: {command} on {first}, which is not one of KEYS"
            assert not first.startswith(("'", '"')), f"{module}:{name}: a key named inside the script"


def test_every_script_and_multi_in_services_is_in_the_inventory():
    """A new script or transaction must say here which keys it gets, so its slots are checked."""
    scripts = {name for _module, name in _scripts()}
    listed = {name for _module, name in CALL_SITES}
    assert scripts <= listed, f"add to CALL_SITES: {sorted(scripts - listed)}"
    multis = []
    for path in SERVICES.rglob("*.py"):
        text = path.read_text()
        multis += [f"{path.relative_to(SERVICES)}" for _ in re.finditer(r"pipeline\(transaction=True\)", text)]
    listed_multis = [module for module, name in CALL_SITES if name.endswith("MULTI")]
    assert sorted(multis) == sorted(listed_multis), f"MULTI call sites changed: {multis}"
