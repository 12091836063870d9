"""Every pattern lesson shows the function the services run (issue 14: "one house").

A lesson prints ``inspect.getsource(<module>.<function>)`` of a pattern; this test finds that cell, resolves
the function the notebook names (through the notebook's own imports), and proves with ``ast`` that the
service code named in the table calls exactly that object. A lesson that shows a function the services do
not run — a copy, a lookalike, a function nobody calls any more — fails here.

Each row: the notebook, the expression it passes to ``inspect.getsource``, the service function that runs it
(``path:Qualified.name``), and the call in that function's body (``module.function`` as the caller's module
imports it, or ``variable.method`` with ``instance_types`` naming what the variable can hold).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _every_balancer_class() -> set[type]:
    from services.core.vocabulary import BALANCERS
    from services.patterns.loadbalance import make_balancer
    return {type(make_balancer(name)) for name in BALANCERS}


@dataclass(frozen=True)
class ShownSource:
    notebook: str
    shown: str  # what the notebook passes to inspect.getsource
    runner: str  # "services/x/y.py:Function" or ":Class.method": the service code that calls it
    call: str  # the call in the runner's body, spelled as the runner spells it
    instance_types: Callable[[], set[type]] | None = None  # for ``variable.method`` calls


LESSONS = [
    # 01: a customer's policy list (and the overview) is read with lesson 01's cache-aside
    ShownSource("01_caching", "cache.cache_aside_get", "services/platform/service_cache.py:ServiceCache.read",
                "pattern.cache_aside_get"),
    # 02: the claims worker handles its consumer group with the lesson's consume_once
    ShownSource("02_events", "streams.consume_once", "services/worker/main.py:consume_forever", "consume_once"),
    # 02: the claims service's outbox relay (started by the wiring layer) runs relay_once
    ShownSource("02_events", "outbox.relay_once", "services/patterns/outbox.py:run_relay", "relay_once"),
    # 04: the gateway's login route creates the session with the lesson's create_session
    ShownSource("04_sessions", "sessions.create_session", "services/auth/routes.py:login", "sessions.create_session"),
    # 05: the gateway asks the balancer of the service for an instance
    ShownSource("05_gateway", "loadbalance.LeastOutstanding.pick", "services/gateway/upstreams.py:Upstreams.pick",
                "balancer.pick", _every_balancer_class),
    # 06: one entity by id, and every committed write, go through lesson 06's coherence functions
    ShownSource("06_coherence", "coherence.read", "services/platform/service_cache.py:ServiceCache.read_entity",
                "coherence.read"),
    ShownSource("06_coherence", "coherence.after_write",
                "services/platform/service_cache.py:ServiceCache.after_write", "coherence.after_write"),
]


def _code_cells(notebook: str) -> list[str]:
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _notebook_namespace(notebook: str) -> dict:
    """The modules the notebook imports (``import x`` / ``from x import y``), imported here: no cell runs."""
    namespace: dict = {}
    for source in _code_cells(notebook):
        try:
            tree = ast.parse(source)
        except SyntaxError:  # top-level await is fine in a notebook, not in ast.parse: skip such a cell
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    namespace[alias.asname or alias.name.split(".")[0]] = importlib.import_module(
                        alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    value = getattr(module, alias.name, None)
                    if value is None:
                        value = importlib.import_module(f"{node.module}.{alias.name}")
                    namespace[alias.asname or alias.name] = value
    return namespace


def _resolve(dotted: str, namespace: dict):
    head, *rest = dotted.split(".")
    value = namespace[head]
    for part in rest:
        value = getattr(value, part)
    return value


def _runner_node(path: Path, qualname: str) -> ast.AST:
    node: ast.AST = ast.parse(path.read_text(encoding="utf-8"))
    for part in qualname.split("."):
        node = next(n for n in node.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                    and n.name == part)
    return node


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("row", LESSONS, ids=lambda row: f"{row.notebook}:{row.shown}")
def test_the_lesson_shows_a_function_the_services_run(row: ShownSource):
    wanted = f"inspect.getsource({row.shown})"
    assert any(wanted in source for source in _code_cells(row.notebook)), \
        f"notebooks/{row.notebook}.ipynb has no cell with {wanted}"
    shown = _resolve(row.shown, _notebook_namespace(row.notebook))
    assert len(inspect.getsource(shown).splitlines()) <= 40, f"{row.shown} is longer than a screen (40 lines)"

    path, qualname = row.runner.split(":")
    runner = _runner_node(ROOT / path, qualname)
    calls = {ast.unparse(n.func) for n in ast.walk(runner) if isinstance(n, ast.Call)}
    assert row.call in calls, f"{row.runner} does not call {row.call} (it calls {sorted(calls)})"

    head, *rest = row.call.split(".")
    if row.instance_types is None:  # a name the runner's module imports: the very object the lesson shows
        called = _resolve(row.call, vars(importlib.import_module(_module_name(ROOT / path))))
        assert called is shown, f"{row.runner} calls {row.call}, which is not the {row.shown} the lesson shows"
    else:  # a method on an object: the lesson's class must be one the variable can hold
        owners = {cls for cls in row.instance_types() if getattr(cls, rest[0], None) is shown}
        assert owners, f"{row.call} in {row.runner} cannot be {row.shown}"


def test_every_service_route_reaches_the_lesson_functions():
    """The runners above are reached from the routes: the domain routes read and write through ``CacheDep``
    (``read_entity`` / ``read`` / ``after_write``); the outbox relay is started by the wiring layer."""
    for service in ("policy", "claims", "customer"):
        source = (ROOT / "services" / service / "routes.py").read_text(encoding="utf-8")
        assert "cache.read_entity(" in source and "cache.after_write(" in source, service
    assert "cache.read(" in (ROOT / "services/policy/routes.py").read_text(encoding="utf-8")
    events = (ROOT / "services/platform/events.py").read_text(encoding="utf-8")
    assert "outbox.run_relay(" in events
