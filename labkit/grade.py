"""``labkit grade NOTEBOOK``: run a notebook under nbval and report each graded check.

nbval runs every code cell in a fresh kernel, in order; with ``--nbval-lax`` a cell passes unless it
raises. Graded check cells start with ``# GRADED CHECK: <name>``; this module maps nbval's results back
to those names and to the AssertionError each check raised.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .tables import text_table

CHECK_MARK = re.compile(r"^#\s*GRADED CHECK:\s*(?P<name>.+)$", re.MULTILINE)
# Terminal colours in tracebacks; in junit XML the escape character itself is written as "#x1B".
ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")


@dataclass
class CellResult:
    cell: int  # nbval's number: the n-th code cell
    name: str
    graded: bool
    passed: bool
    message: str = ""


def graded_cells(notebook: nbformat.NotebookNode) -> dict[int, str]:
    code = [c for c in notebook.cells if c.cell_type == "code"]
    return {i: m.group("name").strip() for i, c in enumerate(code) if (m := CHECK_MARK.search(c.source))}


def _short_error(text: str) -> str:
    """The last exception line of an nbval failure (and its indented detail), without colours."""
    lines = ANSI.sub("", text or "").splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\w*(Error|Exception|Failed)\s*:", line)]
    if not starts:
        return lines[-1] if lines else ""
    first = starts[-1]
    detail = []
    for line in lines[first + 1:first + 6]:
        if not line.startswith("  "):
            break
        detail.append(line)
    return "\n".join([lines[first]] + detail)


def grade(notebook_path: str | Path, timeout_s: int = 300) -> list[CellResult]:
    notebook_path = Path(notebook_path).resolve()
    notebook = nbformat.read(notebook_path, as_version=4)
    checks = graded_cells(notebook)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", str(notebook_path), "--nbval-lax", "--nbval-current-env",
             f"--nbval-cell-timeout={timeout_s}", "--noconftest", "-p", "no:cacheprovider", "-o", "addopts=",
             "-q", f"--junitxml={report}", "--rootdir", str(notebook_path.parent)],
            capture_output=True, text=True, cwd=notebook_path.parent,
        )
        if not report.exists():
            raise RuntimeError(f"nbval produced no report for {notebook_path}")
        results = []
        for case in ET.parse(report).getroot().iter("testcase"):
            match = re.search(r"Cell (\d+)", case.get("name", ""))
            if not match:
                continue
            num = int(match.group(1))
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            message = _short_error((problem.get("message", "") + "\n" + (problem.text or ""))) if problem is not None else ""
            results.append(CellResult(num, checks.get(num, f"cell {num}"), num in checks, problem is None, message))
    return results


def _one_line(message: str, width: int = 150) -> str:
    text = " ".join(message.replace("CheckFailed:", "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def report(results: list[CellResult]) -> str:
    graded = [r for r in results if r.graded]
    rows = [{"check": r.name, "result": "PASS" if r.passed else "FAIL",
             "why": "" if r.passed else _one_line(r.message)} for r in graded]
    broken = [r for r in results if not r.graded and not r.passed]
    out = text_table(rows) if rows else "(this notebook has no graded checks)"
    out += f"\n\n{sum(r.passed for r in graded)} of {len(graded)} graded checks passed"
    if broken:
        out += "\nOther cells that raised: " + ", ".join(f"cell {r.cell} ({r.message.splitlines()[0][:60]})"
                                                         for r in broken if r.message)
    return out
