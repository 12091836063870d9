"""Where does a service's time go? Sample it with py-spy while it works, and sort the samples by layer.

``labkit profile policy --seconds 5`` attaches py-spy (a sampling profiler written in Rust: it reads the
Python stacks of another process from outside, ~100 times a second, without changing its code) to the running
``policy`` process and writes two files into the run directory:

* ``profile-policy-<time>.png``: a flame graph (``labkit.charts.flame_graph``: wider = more samples);
* ``profile-policy-<time>.txt``: the collapsed stacks (``frame;frame;frame count`` per line), which
  ``shares`` below reads.

Only samples where the process was on the CPU count (py-spy leaves idle waits out), so the shares say
where a busy service spends its CPU: the framework, the identity check, JSON and models, Redis, logging,
the system of record. Run traffic at it meanwhile (``labkit load``, or a benchmark), or there is nothing
to see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from services.core.settings import Settings, get_settings

from . import procs
from .errors import LabkitError

#: Layers a sample belongs to if ANY of its frames is theirs, checked in this order: time spent in json
#: while checking an identity is the identity check's; time in logging is logging's, whoever logged.
BY_ANY_FRAME: list[tuple[str, tuple[str, ...]]] = [
    ("logging", ("(logging/", "LogFormatter.")),
    ("identity check", ("services/patterns/identity.py", "services/core/credentials.py")),
    ("Redis client", ("(redis/", "hiredis")),
    ("system of record (SQLite)", ("sqlite3", "services/core/db.py", "repository.py")),
    ("JSON and models", ("(json/", "pydantic", "orjson", "fastapi/encoders.py", "serialize_response")),
]
#: Otherwise the layer of the innermost frame that one of these claims (every request's stack passes through
#: our middleware and routes, so "our code" is only what our code itself computes).
BY_INNERMOST_FRAME: list[tuple[str, tuple[str, ...]]] = [
    ("our code (routes, patterns)", ("services/",)),
    ("framework (FastAPI, Starlette)", ("fastapi/", "starlette/", "anyio/")),
    ("server (uvicorn, HTTP parsing)", ("uvicorn/", "httptools", "h11")),
    ("event loop (asyncio)", ("asyncio/", "uvloop")),
]
LAYERS = [layer for layer, _ in BY_ANY_FRAME + BY_INNERMOST_FRAME]
OTHER = "other"


@dataclass
class Profile:
    service: str
    pid: int
    seconds: float
    flame_graph: Path
    stacks: Path

    def shares(self) -> dict[str, float]:
        return layer_shares(self.stacks.read_text())


def layer_of(stack: list[str]) -> str:
    """The layer of one sample (``stack`` outermost first, as py-spy writes it)."""
    for layer, needles in BY_ANY_FRAME:
        if any(n in frame for frame in stack for n in needles):
            return layer
    for frame in reversed(stack):
        for layer, needles in BY_INNERMOST_FRAME:
            if any(n in frame for n in needles):
                return layer
    return OTHER


def layer_shares(collapsed: str) -> dict[str, float]:
    """``{layer: share of samples}`` from py-spy's collapsed stacks (``a;b;c 42`` per line), largest first."""
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[layer_of(stack.split(";"))] += int(count)
    total = sum(counts.values())
    return {layer: n / total for layer, n in counts.most_common()} if total else {}


def py_spy() -> str:
    """The py-spy binary of this environment (installed with the project) or on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if not found:
        raise LabkitError("py-spy is not installed: `pip install py-spy` (it is in the project's dependencies)")
    return found


def service_pid(name: str, settings: Settings) -> int:
    record = procs.read_pidfiles(settings.run_dir).get(name)
    if record is None or not procs.is_alive(record.pid) or not procs.looks_like_ours(record.pid, "services."):
        raise LabkitError(f"no running service named {name!r}: start the lab (`labkit start-all`), "
                          "see `labkit status` for the names")
    return record.pid


def profile(name: str, seconds: float = 5.0, rate: int = 100, settings: Settings | None = None) -> Profile:
    """Sample the running ``name`` (``policy``, ``gateway``, ``claims#2`` ...) for ``seconds``."""
    settings = settings or get_settings()
    return profile_process(service_pid(name, settings), name, seconds, rate, settings)


def profile_process(pid: int, name: str, seconds: float = 5.0, rate: int = 100,
                    settings: Settings | None = None) -> Profile:
    """Sample the service process ``pid`` (one that is not in the lab's pidfiles: a lesson's second instance)."""
    settings = settings or get_settings()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = settings.run_dir / f"profile-{name.replace('#', '-')}-{stamp}"
    png, txt = base.with_suffix(".png"), base.with_suffix(".txt")
    # One recording, in py-spy's collapsed form: the layer shares and the flame graph are drawn from the
    # same samples (two recordings would profile two different moments).
    _record(pid, seconds, rate, txt, name)
    from . import charts

    charts.flame_graph(txt.read_text(), title=f"{name} (pid {pid}): {seconds:g} s sampled at {rate} Hz") \
        .savefig(png, dpi=110, bbox_inches="tight")
    return Profile(name, pid, seconds, png, txt)


def _record(pid: int, seconds: float, rate: int, out: Path, name: str) -> None:
    """``--nonblocking``: read the stacks without pausing the service, so sampling barely slows it."""
    argv = [py_spy(), "record", "--pid", str(pid), "--duration", f"{max(1, round(seconds))}", "--rate", str(rate),
            "--format", "raw", "--output", str(out), "--nonblocking"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        said = (done.stderr or done.stdout).strip()
        hint = ""
        if "Permission" in said or "ptrace" in said.lower():
            hint = (" — the kernel refused to let py-spy read another process (ptrace). Run labkit as the user "
                    "that started the lab, or allow it once: `sudo sysctl kernel.yama.ptrace_scope=0`")
        raise LabkitError(f"py-spy could not sample {name} (pid {pid}): {said[-400:]}{hint}")
