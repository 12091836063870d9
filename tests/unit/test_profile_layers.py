"""How ``labkit profile`` sorts py-spy's samples into layers (pure text in, shares out)."""

import pytest

from labkit.profile import OTHER, layer_of, layer_shares

ROUTE = "get_policy (services/policy/routes.py:74)"
APP = "app (fastapi/routing.py:161)"
SERVER = "run_asgi (uvicorn/protocols/http/httptools_impl.py:409)"


def test_time_in_the_redis_client_counts_as_redis_whoever_called_it():
    stack = [SERVER, APP, ROUTE, "execute (redis/asyncio/client.py:2262)", "wait_for (asyncio/tasks.py:476)"]
    assert layer_of(stack) == "Redis client"


def test_json_decoded_inside_the_identity_check_is_the_identity_checks_time():
    stack = [SERVER, APP, "verify_identity (services/patterns/identity.py:120)", "loads (json/__init__.py:346)"]
    assert layer_of(stack) == "identity check"


def test_logging_is_logging_even_under_our_middleware():
    stack = [SERVER, "__call__ (services/platform/middleware.py:88)", "info (logging/__init__.py:1489)"]
    assert layer_of(stack) == "logging"


def test_otherwise_the_innermost_known_frame_decides():
    assert layer_of([SERVER, APP, ROUTE]) == "our code (routes, patterns)"
    assert layer_of([SERVER, ROUTE, APP]) == "framework (FastAPI, Starlette)"
    assert layer_of([SERVER]) == "server (uvicorn, HTTP parsing)"
    assert layer_of(["select (selectors.py:468)"]) == OTHER


def test_shares_weigh_each_stack_by_its_count_and_add_up_to_one():
    collapsed = "\n".join([f"{SERVER};{APP};{ROUTE} 3", f"{SERVER};{APP} 1", "a line py-spy never writes",
                           f"{SERVER};{APP};execute (redis/asyncio/client.py:1) 4"])
    shares = layer_shares(collapsed)
    assert shares == pytest.approx({"Redis client": 0.5, "our code (routes, patterns)": 0.375,
                                    "framework (FastAPI, Starlette)": 0.125})
    assert list(shares) == ["Redis client", "our code (routes, patterns)", "framework (FastAPI, Starlette)"]
    assert layer_shares("") == {}
