"""The ceiling for one Python HTTP hop on this machine: uvicorn answering a constant JSON body.

No framework, no Redis, no database: a raw ASGI app. Started by ``load_targets`` as a subprocess on a
free port, with the same uvicorn defaults as the lab's services (uvloop, httptools, no access log), so
"gateway vs bare endpoint" compares our whole read path with doing nothing at all.
Run by hand: ``python -m uvicorn benchmarks.bare_endpoint:app --port 8099``.
"""

BODY = b'{"id":"POL-000001","status":"active","product":"auto"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to open or close
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
