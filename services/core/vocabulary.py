"""The words a setting may take, spelled once: the settings check a value against them at start.

Each tuple names the implementations a pattern module offers (``services/patterns/cache.py``,
``coherence.py``, ``loadbalance.py``). They live here, in the foundation, so that
``services/core/settings.py`` can turn them into ``Literal`` types — a misspelled
``LAB_CACHE_COHERENCE=delete_on_wirte`` fails when the service starts, listing the valid words —
without core importing a pattern. The pattern modules import their tuple from here and check at import
that it matches what they implement.
"""

from __future__ import annotations

from typing import Literal

#: How long a cached copy lives (lesson 01; ``services/patterns/cache.py``).
TTL_STRATEGIES = ("fixed", "jittered", "sliding")

#: What a write does to the cached copies (lesson 06; ``services/patterns/coherence.py``).
COHERENCE_STRATEGIES = ("ttl_only", "delete_on_write", "delete_with_token", "write_through", "versioned_keys",
                        "event_driven")

#: How the gateway picks an instance (lesson 05; ``services/patterns/loadbalance.py``).
BALANCERS = ("round_robin", "random", "least_outstanding", "weighted")

#: Where the gateway learns the instances from (lesson 03): the Redis registry, or the settings' ports.
DISCOVERY_MODES = ("registry", "static")

TtlStrategy = Literal[TTL_STRATEGIES]
CoherenceStrategy = Literal[COHERENCE_STRATEGIES]
Balancer = Literal[BALANCERS]
DiscoveryMode = Literal[DISCOVERY_MODES]
