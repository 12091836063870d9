"""The folder names are the layers, and every arrow points down.

    apps (gateway, policy, claims, customer, worker, auth)
      -> services/platform   (binds the patterns to a FastAPI app: routes, dependencies, lifespans)
      -> services/patterns   (the Redis patterns a lesson shows; no web framework)
      -> services/core       (foundation: settings, keys, the Redis client, SQLite, ids, error type)

A lesson shows a pattern module and the services run that same module; that only stays true if the
pattern does not reach up into the app that runs it. This test reads every module's imports with
``ast`` (nothing is imported, so a cycle cannot hide an arrow) and names each arrow that points up.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
APPS = ("gateway", "policy", "claims", "customer", "worker", "auth")
WEB_FRAMEWORKS = ("fastapi", "starlette")


def _package_of(path: Path) -> str:
    parts = path.relative_to(SERVICES.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts[:-1])


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _modules_under(layer: str) -> list[Path]:
    return sorted((SERVICES / layer).rglob("*.py"))


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in _modules_under(layer):
        for module in sorted(imports_of(path)):
            if any(_is_under(module, prefix) for prefix in forbidden):
                bad.append(f"{path.relative_to(SERVICES.parent)} imports {module}")
    return bad


APP_PACKAGES = tuple(f"services.{app}" for app in APPS)


def test_the_layers_exist():
    for layer in ("core", "patterns", "platform"):
        assert _modules_under(layer), f"services/{layer} has no modules"


def test_core_imports_nothing_above_it():
    forbidden = ("services.patterns", "services.platform", *APP_PACKAGES, *WEB_FRAMEWORKS)
    assert _violations("core", forbidden) == []


def test_patterns_are_framework_free_and_import_no_wiring_or_app():
    forbidden = ("services.platform", *APP_PACKAGES, *WEB_FRAMEWORKS)
    assert _violations("patterns", forbidden) == []


def test_platform_imports_no_app():
    assert _violations("platform", APP_PACKAGES) == []


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def test_registries_of_named_choices_have_one_meaning_each():
    """``STRATEGIES`` once meant TTL strategies, coherence strategies and balancers, depending on the file.

    Now each vocabulary has its own name, spelled out once (in ``services/core/vocabulary.py``, so the
    settings can check a value at start without core importing a pattern); no constant name is defined
    with two meanings in two pattern modules.
    """
    where: dict[str, list[str]] = defaultdict(list)
    for path in _modules_under("patterns"):
        for name in _top_level_names(path):
            if name.isupper():
                where[name].append(path.name)
    assert "STRATEGIES" not in where, f"an ambiguous STRATEGIES is defined in {where['STRATEGIES']}"
    twice = {name: files for name, files in where.items() if len(files) > 1}
    assert twice == {}, f"the same constant name is defined in several pattern modules: {twice}"
    vocabulary = _top_level_names(SERVICES / "core" / "vocabulary.py") if (SERVICES / "core" / "vocabulary.py").exists() else set()
    for name in ("TTL_STRATEGIES", "COHERENCE_STRATEGIES", "BALANCERS"):
        assert name in vocabulary, f"{name} is not defined in services/core/vocabulary.py"
        assert name not in where, f"{name} is redefined in {where[name]} instead of imported from core"


def test_cache_coherence_and_balancing_modules_share_no_name():
    """One word, one meaning: no module-level name is defined (not merely imported) in two of the pattern
    modules a learner reads side by side — cache-aside (lesson 01), coherence (06), balancers (05).
    A name the coherence module needs from the cache module is imported from it, so it is the same object."""
    modules = ("cache.py", "coherence.py", "loadbalance.py")
    where: dict[str, list[str]] = defaultdict(list)
    for name in modules:
        for defined in _top_level_names(SERVICES / "patterns" / name):
            if not defined.startswith("_") and defined != "log":  # ``log``: each module's own logger
                where[defined].append(name)
    assert {name: files for name, files in where.items() if len(files) > 1} == {}


def _functions_referencing(name: str) -> list[str]:
    """``module:function`` for every function (or method) under services/ whose body mentions ``name``."""
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                if name in names:
                    found.append(f"{path.relative_to(SERVICES.parent)}:{node.name}")
    return found


def test_the_generation_guarded_fill_has_exactly_one_caller():
    """Lesson 06's Lua script is run by one function, the one the lesson shows and the services call."""
    assert _functions_referencing("FILL_IF_GENERATION") == ["services/patterns/coherence.py:fill_if_generation"]


def _dotted_calls(path: Path, function: str) -> set[str]:
    """Every call ``a.b(...)`` / ``b(...)`` in the function (or method) named ``function`` of ``path``."""
    calls = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                calls.add(ast.unparse(call.func))
    return calls


def test_the_services_cache_runs_lesson_06s_coherence_functions():
    """``ServiceCache`` reads one entity with ``coherence.read`` and follows a write with
    ``coherence.after_write``: the functions notebook 06 shows and measures, not a copy of them. The
    ``event_driven`` subscriber is lesson 06's ``invalidate_on_events``."""
    platform = SERVICES / "platform"
    assert "coherence.read" in _dotted_calls(platform / "service_cache.py", "read_entity")
    assert "coherence.after_write" in _dotted_calls(platform / "service_cache.py", "after_write")
    assert "coherence.invalidate_on_events" in _dotted_calls(platform / "invalidation_subscriber.py",
                                                             "event_driven_invalidation")
