"""Every benchmark in one run, and one table of their headline figures (``labkit bench``, ``make bench``).

A benchmark is a ``benchmarks/*.py`` module with ``main(argv) -> dict`` of its headline figures (like
``gateway_hop``). Each runs with short durations (``--seconds``, or the module's own ``QUICK_ARGV``) against
one lab started (or reused) once for all of them. A module may declare ``TARGETS = {figure: (op, value)}``;
the table then says whether each target was met in this run. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import operator
import statistics
import time
import traceback
from pathlib import Path

from labkit.tables import text_table

from .harness import running_lab

HERE = Path(__file__).parent
NOT_BENCHMARKS = {"__init__", "harness", "run_all", "bare_endpoint", "generator", "minimal_route"}
# Targets of benchmarks that do not declare their own (gateway_hop: issue 2).
KNOWN_TARGETS = {"added_p50_ms": ("<=", 0.5), "throughput_kept": (">=", 0.5)}
COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def run_one(name: str, seconds: float) -> tuple[dict, dict]:
    """(figures, targets) of one benchmark run with short durations."""
    module = importlib.import_module(f"benchmarks.{name}")
    takes_seconds = '"--seconds"' in inspect.getsource(module)  # else: its own (short) defaults
    argv = list(getattr(module, "QUICK_ARGV", ["--seconds", f"{seconds:g}"] if takes_seconds else []))
    return flatten(module.main(argv) or {}), {**KNOWN_TARGETS, **getattr(module, "TARGETS", {})}


def flatten(figures: dict, prefix: str = "") -> dict:
    """Numbers as they are; nested dicts as ``outer.inner``; a list of numbers as its median; tables skipped."""
    flat = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            flat[name] = statistics.median(value)
        elif isinstance(value, (int, float, str)):
            flat[name] = value
    return flat


def figure_rows(name: str, figures: dict, targets: dict) -> list[dict]:
    rows = []
    for figure, value in figures.items():
        row = {"benchmark": name, "figure": figure, "value": _fmt(value), "target": "", "met": ""}
        if figure in targets and isinstance(value, (int, float)):
            op, limit = targets[figure]
            row["target"] = f"{op} {limit:g}"
            row["met"] = "yes" if COMPARE[op](value, limit) else "NO"
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per contender (short default)")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (module names)")
    args = parser.parse_args(argv)
    names = args.only or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(discover())}")

    rows, results, failed = [], {}, []
    with running_lab():  # one lab for all of them (reused if it is already up)
        for name in names:
            started = time.perf_counter()
            print(f"\n=== {name} ===")
            try:
                figures, targets = run_one(name, args.seconds)
            except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
                traceback.print_exc()
                failed.append(name)
                rows.append({"benchmark": name, "figure": "FAILED (see above)", "value": "", "target": "",
                             "met": ""})
                continue
            results[name] = figures
            rows += figure_rows(name, figures, targets)
            print(f"({name}: {time.perf_counter() - started:.0f} s)")

    print("\nAll benchmarks, measured side by side in this run (noisy shared machine: compare, don't trust one digit)")
    print(text_table(rows))
    return {"results": results, "failed": failed}


if __name__ == "__main__":
    raise SystemExit(1 if main()["failed"] else 0)
