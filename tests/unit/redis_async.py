"""Run an async test body against a fresh ``redis.asyncio`` client on the session's server."""

import asyncio

import redis.asyncio as aioredis


# redis-py gives up connecting after 5 s by default; a hundred readers opening connections at once on a
# machine shared by many test runs have been seen to need more (Python 3.13, load average 60).
PATIENT = {"socket_connect_timeout": 60, "socket_timeout": 60}


def run(redis_url, body):
    async def main():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True, **PATIENT)
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())
