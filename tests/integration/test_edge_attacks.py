"""Attacks on the front door, made the way an attacker makes them: concurrent guessing, forged log lines,
odd bytes and paths that climb. Raw sockets where an HTTP client would tidy the request up first."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket

import httpx
import pytest

from labkit.auth import gateway_headers, service_headers
from services.core import keys
from waiting import wait_for  # tests/waiting.py


def raw_request(url: str, request: bytes, timeout_s: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` byte for byte (``{host}`` is filled in); (status, headers, body) of the answer."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(request.replace(b"{host}", f"{host}:{port}".encode()))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return int(status_line.split()[1]), headers, body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def get(url: str, target: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in (headers or {}).items())
    return raw_request(url, b"GET " + target + b" HTTP/1.1\r\nHost: {host}\r\n" + lines + b"Connection: close\r\n\r\n")


def is_json_error(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and "code" in error and "message" in error


# --- item 2: the lockout holds under concurrency ---------------------------------------------------------

def concurrent_logins(gateway_url: str, attempts: list[tuple[str, str]]) -> list[int]:
    """Every login at once (asyncio + httpx); the status codes, in the order of ``attempts``."""
    async def main():
        limits = httpx.Limits(max_connections=len(attempts), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway_url, timeout=120, limits=limits) as client:
            async def one(username, password):
                return (await client.post("/api/auth/login", json={"username": username, "password": password}))
            answers = await asyncio.gather(*(one(u, p) for u, p in attempts))
        return [a.status_code for a in answers]
    return asyncio.run(main())


@pytest.fixture
def forget_login_attempts(r):
    """Start and end with no login counters for the names a test uses (and for loopback, the tests' client)."""
    names: list[str] = []
    yield names
    r.delete(keys.login_attempts("client", "127.0.0.1"), *[keys.login_attempts("account", n) for n in names])


def test_forty_concurrent_guesses_check_at_most_the_limit_per_account(settings, r, forget_login_attempts):
    victim = "joe"  # a real account, so the last attempt is the right password
    forget_login_attempts.append(victim)
    r.delete(keys.login_attempts("account", victim), keys.login_attempts("client", "127.0.0.1"))
    attempts = [(victim, f"guess-{i}") for i in range(39)] + [(victim, "joe-lab-pw")]
    statuses = concurrent_logins(settings.url_of("gateway"), attempts)
    wrong = statuses[:-1]
    assert set(wrong) <= {401, 429}, statuses
    assert sum(s != 429 for s in wrong) <= settings.login_max_failures_account, statuses
    assert statuses[-1] in (200, 429)
    assert int(r.get(keys.login_attempts("account", victim)) or 0) <= settings.login_max_failures_account


def test_forty_concurrent_guesses_check_at_most_the_limit_per_client(settings, r, forget_login_attempts):
    names = [f"nobody-{secrets.token_hex(4)}-{i}" for i in range(40)]  # 40 accounts, one address
    forget_login_attempts.extend(names)
    r.delete(keys.login_attempts("client", "127.0.0.1"))
    statuses = concurrent_logins(settings.url_of("gateway"), [(n, "password1") for n in names])
    assert set(statuses) <= {401, 429}, statuses
    assert sum(s != 429 for s in statuses) <= settings.login_max_failures_client, statuses


# --- item 3: no forged log lines -------------------------------------------------------------------------

def test_a_newline_in_the_path_cannot_forge_a_gateway_log_line(settings):
    log_path = settings.run_dir / "logs" / "gateway.log"
    already = log_path.stat().st_size  # look only at what this test's requests write

    def written() -> bytes:
        with log_path.open("rb") as log:
            log.seek(already)
            return log.read()
    marker = secrets.token_hex(6)
    forged = f"2026-12-01 00:00:00,000 WARNING lab.forged {marker} admin logged in"
    target = ("/api/policies/x%0a" + forged.replace(" ", "%20") + "%0d%0aand%ffbytes%c3%28").encode()
    status, _, body = get(settings.url_of("gateway"), target)
    assert status in (401, 404) and is_json_error(body)
    raw_bytes = b"GET /api/policies/y" + marker.encode() + b"\xff\xfe HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    status, _, _ = raw_request(settings.url_of("gateway"), raw_bytes)
    assert 400 <= status < 500
    assert wait_for(lambda: marker.encode() in written(), "the gateway to log the request", every_s=0.1)
    text = written().decode("utf-8")  # raises if a client's byte reached the file as it is
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith(forged[:30]) or line.startswith(forged)], lines
    assert not [line for line in lines if marker in line and not line.startswith("20")], lines


# --- item 4: odd input is never a 500 -------------------------------------------------------------------

def test_a_bearer_token_that_is_not_ascii_is_401_not_500(settings):
    for token in (b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer \xff\xfe", b"bearer " + b"\xe2\x80\x8b" * 10):
        response = httpx.get(settings.url_of("gateway") + "/api/policies/POL-000001",
                             headers={"authorization": token})
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated", token


def chunked(total: int, piece: int = 8192):
    sent = 0
    while sent < total:
        yield b"x" * min(piece, total - sent)
        sent += piece


@pytest.mark.parametrize("target", ["gateway", "gateway-auth", "policy", "claims", "customer"])
def test_a_chunked_body_over_the_limit_is_413_json(settings, target):
    service, path = {"gateway": ("gateway", "/api/claims"), "gateway-auth": ("gateway", "/api/auth/login"),
                     "policy": ("policy", "/policies"), "claims": ("claims", "/claims"),
                     "customer": ("customer", "/customers")}[target]
    credentials = gateway_headers(settings) if service == "gateway" else service_headers(settings, service)
    headers = credentials | {"content-type": "application/json"}
    with httpx.Client(base_url=settings.url_of(service), timeout=30) as client:
        response = client.post(path, content=chunked(settings.max_body_bytes + 10_000), headers=headers)
    assert "content-length" not in response.request.headers  # really chunked
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "body_too_large"


def http(method: bytes, target: bytes, headers: list[bytes] = (), body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request as bytes; ``Content-Length`` from the body unless a header sets it."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: {host}", b"Connection: close", *headers]
    if body is not None and not any(h.lower().startswith(b"content-length") for h in headers):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


JSON = b"Content-Type: application/json"
ODD_REQUESTS = {
    "cookie of odd bytes": http(b"GET", b"/api/policies/POL-000001", [b"Cookie: lab_session=\xff\xfe; a=\"\\"]),
    "quoted cookie with escapes": http(b"GET", b"/api/auth/me", [b'Cookie: lab_session="\\303\\251x"']),
    "cookie of 10,000 pairs": http(b"GET", b"/api/auth/me", [b"Cookie: " + b"; ".join(b"k%d=v" % i for i in range(10_000))]),
    "request id of odd bytes": http(b"GET", b"/api/policies/POL-000001", [b"X-Request-ID: \xff\xfe\x80"]),
    "content-length not a number": http(b"POST", b"/api/claims", [b"Content-Length: 1e9"], b"{}"),
    "content-length negative": http(b"POST", b"/api/claims", [b"Content-Length: -1"], b"{}"),
    "content-length twice": http(b"POST", b"/api/claims", [b"Content-Length: 2", b"Content-Length: 9"], b"{}"),
    "huge header": http(b"GET", b"/api/policies/POL-000001", [b"X-Big: " + b"a" * 200_000]),
    "login body not UTF-8": http(b"POST", b"/api/auth/login", [JSON], b'{"username":"\xff\xfe","password":"x"}'),
    "login name a lone surrogate": http(b"POST", b"/api/auth/login", [JSON],
                                        b'{"username":"\\ud800","password":"xyz1"}'),
    "login name with a NUL": http(b"POST", b"/api/auth/login", [JSON], b'{"username":"a\\u0000b","password":"x"}'),
    "non-ASCII in the path and query": http(b"GET", b"/api/policies/\xc3\xa9\xff?limit=\xff"),
    "query not UTF-8": http(b"GET", b"/api/policies?customer_id=%ff%fe&limit=%ff"),
}


@pytest.mark.parametrize("name", list(ODD_REQUESTS))
def test_odd_bytes_at_the_gateway_are_never_a_500(settings, name):
    """Refused (4xx), or ignored and served — but never a crash, and an error is always JSON."""
    request = ODD_REQUESTS[name]
    if b"Authorization" not in request:  # past the identity check, to where the odd value is used
        request = request.replace(b"Connection: close", b"Connection: close\r\nAuthorization: Bearer "
                                  + settings.api_key().encode(), 1)
    try:
        status, headers, body = raw_request(settings.url_of("gateway"), request)
    except (ConnectionResetError, BrokenPipeError):
        return  # the server hung up on a request it could not parse: no answer, and no crash
    assert status < 500, (name, status, body[:300])
    if status >= 400 and headers.get("content-type", "").startswith("application/json"):
        assert is_json_error(body), (name, body[:300])


# --- item 5: paths that climb ----------------------------------------------------------------------------

CLIMBS = [
    b"/api/policies/..%2f..%2fhealth",
    b"/api/policies/..%2fadmin%2fknobs",
    b"/api/policies/..%2F..%2Fadmin%2Fknobs",
    b"/api/policies/%2e%2e/%2e%2e/health",
    b"/api/policies/%2E%2E%2F%2E%2E%2Fhealth",
    b"/api/policies/%2e%2e/admin/knobs",
    b"/api/policies/.%2e/.%2e/health",
    b"/api/policies/..%5c..%5chealth",
    b"/api/policies/..\\..\\health",
    b"/api/policies/../../health",
    b"/api/policies/../../admin/knobs",
    b"/api/policies/./../../health",
    b"/api/../health",
    b"/api/policies/..",
    b"/api/policies/%00/../../health",
    b"/api/claims/CLM-000001/../../../admin/knobs",
    b"/api/customers/..%2f..%2fstats",
]


@pytest.mark.parametrize("target", CLIMBS, ids=[c.decode() for c in CLIMBS])
def test_a_path_that_climbs_out_of_its_service_is_a_json_404_from_the_gateway(settings, target):
    status, headers, body = get(settings.url_of("gateway"), target, gateway_headers(settings))
    assert status == 404, (status, body[:300])
    assert is_json_error(body) and "x-served-by" not in headers, body[:300]
    assert b"uptime_s" not in body and b"error_rate" not in body


@pytest.mark.parametrize("target", [b"/api/policies/%252e%252e%252f%252e%252e%252fhealth",
                                    b"/api/policies/%252e%252e/%252e%252e/health",
                                    b"/api/policies/..;/..;/health"])
def test_a_double_encoded_climb_is_never_decoded_twice(settings, target):
    """Decoded once, this is a strange id under /policies; it must never become ``..`` at the service."""
    status, _, body = get(settings.url_of("gateway"), target, gateway_headers(settings))
    assert 400 <= status < 500 and is_json_error(body), (status, body[:300])
    assert b"uptime_s" not in body


def test_a_path_resolved_into_another_service_goes_to_that_service_only(settings):
    status, headers, body = get(settings.url_of("gateway"), b"/api/policies/../customers/CUS-000001",
                                gateway_headers(settings, ask_the_service=True))
    assert status == 200 and json.loads(body)["id"] == "CUS-000001"
    assert headers["x-served-by"].startswith("customer")
