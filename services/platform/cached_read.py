"""Lesson 07: a cached read by id, answered in front of FastAPI — the same pattern at a fraction of the cost.

``labkit profile policy`` under load shows where a cache HIT's time goes: about half of it in FastAPI and
Starlette (routing, the request object, solving dependencies, the response model) for an answer that is one
Redis GET away. ``CachedReadFront`` is a raw ASGI handler in front of the app, like the gateway's proxy. For
``GET /<things>/<id>`` it runs what the route runs, in the same order, through the same functions:

1. the caller's identity: ``access.verified_principal`` (what the route's ``Caller`` dependency calls);
2. the copy in Redis: ``ServiceCache.peek_entity`` — lesson 06's ``coherence.peek``, the first half of the
   ``coherence.read`` the route calls, counted in the same ``/stats``;
3. the route's ownership rule (``Principal.ensure_sees``: someone else's record looks like none at all);
4. the body through the route's own response model, with the route's ``ETag`` and ``X-Cache: HIT``.

Everything else goes on to the route, untouched: a miss (the route loads and fills), an id not spelled
right (422), no or a bad identity (401), a fault knob turned (lessons 07-08), caching switched off, Redis not
answering (the route is told, so it does not wait for Redis a second time). The principal verified here goes
along in the ASGI scope: an identity header is accepted only once. ``tests/integration/
test_cached_read_front.py`` sends the same requests to an instance with and one without it
(``LAB_FAST_READS=0``) and compares status, body and headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, TypeAdapter, ValidationError

from services.core.errors import LabError, not_found
from services.core.ids import is_valid

from .access import PRINCIPAL, verified_principal
from .error_handlers import lab_error_response
from .etags import etag
from .middleware import header
from .service_cache import REDIS_JUST_FAILED, cache_of


@dataclass(frozen=True)
class CachedRead:
    """One route the fast path may answer: ``GET {prefix}{id}``, reading a ``kind`` by id through the cache."""

    prefix: str  # "/policies/"
    kind: str  # "policy"
    model: type[BaseModel]  # the route's response_model: the body is its JSON, byte for byte
    owner: str | None  # the field naming the customer it belongs to; None: the id is the customer's own


class CachedReadFront:
    def __init__(self, app, *, state, reads: list[CachedRead]):
        self.app, self.state = app, state
        self.reads = {read.prefix: read for read in reads}
        self.adapters = {read.kind: TypeAdapter(read.model) for read in reads}

    def _route_of(self, scope) -> tuple[CachedRead, str] | None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
            return None
        head, _, entity_id = scope["path"].rpartition("/")
        read = self.reads.get(head + "/")
        if read is None or not is_valid(read.kind, entity_id):
            return None
        return read, entity_id

    async def __call__(self, scope, receive, send):
        route = self._route_of(scope) if self.state.settings.fast_reads else None
        if route is None or not await self._answer(*route, scope, receive, send):
            await self.app(scope, receive, send)

    async def _answer(self, read: CachedRead, entity_id: str, scope, receive, send) -> bool:
        """True once the request is answered here; False: the route answers it."""
        state = self.state
        if not state.settings.cache_enabled or state.knobs.delay_ms or state.knobs.error_rate:
            return False
        identity = header(scope, b"x-lab-identity")
        who = verified_principal(state, identity.decode("latin-1") if identity else None, "GET", scope["path"])
        if who is None:
            return False
        request_state = scope.setdefault("state", {})
        request_state[PRINCIPAL] = who
        try:
            if read.owner is None:  # a customer record: whose it is, is in the path (checked before the cache)
                who.ensure_sees(entity_id, read.kind, entity_id)
            found = await cache_of(state).peek_entity(read.kind, entity_id)
            if found.unreachable:
                request_state[REDIS_JUST_FAILED] = True
            if not found.found:
                return False
            if found.value is None:  # a cached "does not exist"
                raise not_found(read.kind, entity_id)
            if read.owner is not None:
                who.ensure_sees(found.value.get(read.owner), read.kind, entity_id)
            adapter = self.adapters[read.kind]
            body = adapter.dump_json(adapter.validate_python(found.value))
        except LabError as exc:
            await lab_error_response(exc)(scope, receive, send)
            return True
        except ValidationError:  # a copy the model refuses: the route meets it too, and answers as it does
            return False
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"),
                                (b"x-cache", b"HIT"), (b"etag", etag(found.value["version"]).encode())]})
        await send({"type": "http.response.body", "body": body})
        return True
