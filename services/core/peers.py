"""Calls from one domain service to another (policy asks customer, claims asks policy).

A service never reads another service's database: it asks over HTTP, as the lab's system user (a signed
identity, see ``access.py``). When the other service is down the caller answers 503 naming it, rather
than guessing.
"""

from __future__ import annotations

import httpx
from fastapi import Request

from .access import system_identity_header
from .errors import LabError


async def fetch_peer_entity(request: Request, service: str, path: str) -> dict | None:
    """GET ``path`` on ``service``: the JSON body, None on 404, LabError 503 when it cannot answer."""
    state = request.app.state
    url = state.settings.url_of(service) + path
    rid = request.scope.get("state", {}).get("request_id")
    headers = system_identity_header(state.settings.shared_secret(), f"service:{state.service}")
    if rid:
        headers["x-request-id"] = rid
    try:
        response = await state.http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise LabError(503, "dependency_unavailable",
                       f"the {service} service did not answer ({type(exc).__name__}); try again shortly",
                       service=service) from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise LabError(503, "dependency_unavailable",
                       f"the {service} service answered {response.status_code}", service=service)
    return response.json()
