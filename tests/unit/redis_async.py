"""Run an async test body against a fresh ``redis.asyncio`` client on the session's server."""

import asyncio

import redis.asyncio as aioredis


def run(redis_url, body):
    async def main():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())
