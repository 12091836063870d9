"""A yardstick between "bare uvicorn" and "our service": one FastAPI route doing one redis-py GET.

``GET /policies/{policy_id}`` returns the bytes the policy service cached for that policy (its Redis copy),
with no identity check, no model, no logging: what FastAPI + redis-py cost by themselves on this machine.
Started by ``benchmarks/speed.py`` as a subprocess with the same uvicorn flags as the lab's services;
``BENCH_REDIS_URL`` says which Redis to read.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from redis.asyncio import Redis

from services.core import keys


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/policies/{policy_id}")
async def read_policy(policy_id: str) -> Response:
    copy = await app.state.redis.get(keys.cache_entity("policy", policy_id))
    if copy is None:
        return Response(b'{"error":"not cached"}', status_code=404, media_type="application/json")
    return Response(copy, media_type="application/json")
