"""Where the gateway sends each service's traffic.

``StaticUpstreams`` knows one instance per service, at the port settings give it. Lesson 03 replaces it
with a view of the Redis registry that can hold many instances and balance between them; the proxy only
ever calls ``pick(service)``, so it does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core.settings import ROUTES, Settings


@dataclass(frozen=True)
class Target:
    service: str
    instance_id: str
    base_url: str


class StaticUpstreams:
    def __init__(self, settings: Settings):
        self.targets = {
            service: Target(service, f"{service}@{settings.advertised_host}:{settings.port_of(service)}",
                            settings.url_of(service))
            for service in ROUTES.values()
        }

    def pick(self, service: str) -> Target | None:
        return self.targets.get(service)

    def describe(self) -> dict:
        return {service: [{"instance": t.instance_id, "url": t.base_url}] for service, t in self.targets.items()}
