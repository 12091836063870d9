"""Who holds which secret: everything derives from the lab's master secret, and only labkit holds that.

The threat this answers (README, "Who may call what"): *a compromised service* — an attacker who has
everything one service's process was given: its environment, its Redis user, its keys — but not what the
other processes were given. So no process but labkit may hold a secret that opens another service:

* each service gets **its own Redis user's URL** (``lab-<service>``, ``services/core/acl.py``), never the
  admin one;
* identities are signed with **one HMAC key per (issuer, audience) pair**: ``gateway->claims`` is the key
  the gateway signs with for the claims service, and the only ones who hold it are the gateway and claims.
  The policy service holds ``gateway->policy``, ``labkit->policy``, ``claims->policy`` (to verify what it is
  sent) and ``policy->customer`` (to sign its own calls to the customer service) — nothing with which an
  identity addressed to claims could be made;
* the gateway holds ``gateway->X`` for every service and the lab's API key: it is the edge, and a compromised
  gateway is out of this model's reach (it sees every session anyway).

All lab processes run as one OS user on one machine, so a process that reads ``<run_dir>/internal-secret``
or another process's ``/proc/<pid>/environ`` still gets everything: here the separation is in what each
process is *given*. In production the services would run on separate hosts (or at least as separate
users), and then this is the whole separation.
"""

from __future__ import annotations

import hashlib
import hmac

#: Issuers that may sign an identity for any subject: the edge, and the lab's own tools (the operator).
GATEWAY, LABKIT = "gateway", "labkit"

#: The peer calls the services make as themselves (``services/platform/peers.py``, the worker): caller -> callees.
PEER_CALLS = {"customer": ("policy", "claims"), "policy": ("customer",), "claims": ("policy",), "worker": ("claims",)}

#: The services the gateway routes to (and signs identities for).
ROUTED = ("customer", "policy", "claims")


def derive(master: str, purpose: str) -> str:
    """A key for one purpose. HMAC-SHA256 is a PRF: knowing one derived key reveals neither the master
    nor any other derived key."""
    return hmac.new(master.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def pair(issuer: str, audience: str) -> str:
    return f"{issuer}->{audience}"


def identity_key(master: str, issuer: str, audience: str) -> str:
    return derive(master, f"identity:{pair(issuer, audience)}")


def identity_keys_for(master: str, service: str) -> dict[str, str]:
    """The identity keys labkit hands the process of ``service``: exactly what it must verify and sign."""
    pairs = [(LABKIT, service)]  # the lab's tools call every service straight (and the gateway's /admin)
    if service == GATEWAY:
        pairs += [(GATEWAY, routed) for routed in ROUTED]
    if service in ROUTED:
        pairs.append((GATEWAY, service))
    pairs += [(caller, service) for caller, callees in PEER_CALLS.items() if service in callees]  # to verify
    pairs += [(service, callee) for callee in PEER_CALLS.get(service, ())]  # to sign its own calls
    return {pair(i, a): identity_key(master, i, a) for i, a in pairs}
