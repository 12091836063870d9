"""``labkit grade NOTEBOOK``: run a notebook in a fresh kernel and score each graded check.

The conventions are those of nbgrader and otter-grader, kept small:

* a **graded check** is a code cell that starts with ``# GRADED CHECK: <name>``; a ``# points: N`` line
  right after it gives its weight (1 when absent). The score is the sum of the points of the checks that
  passed; the total is the sum of all their points;
* every cell runs in order in one kernel (``nbclient``); a graded check has its own **timeout**
  (``--timeout``, 60 s by default): an answer that loops forever fails that check, the kernel is
  interrupted and the next cell runs;
* a check cell is **read-only** in the exercise (``editable``/``deletable`` false, set by
  ``labkit exercises build``) and carries the checksum of its source. A check whose source was changed is
  reported as ``EDITED``: the *original* check (from the notebook's solution, or the checksum's) is run
  instead when it is known, otherwise the edited check scores nothing;
* **hidden checks** live with the instructor, not in the learner's notebook: ``--with-hidden DIR`` appends
  the checks of ``DIR/<notebook name>.py`` (cells separated by ``# GRADED CHECK:`` lines) after the
  learner's cells. Without them the summary says "all visible checks passed", never "all passed".

``--json`` prints the result as JSON; ``--results FILE`` writes Gradescope's ``results.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .tables import text_table

CHECK_MARK = re.compile(r"^#\s*GRADED CHECK:\s*(?P<name>.+)$", re.MULTILINE)
POINTS_MARK = re.compile(r"^#\s*points:\s*(?P<points>\d+(\.\d+)?)\s*$", re.MULTILINE)
# Terminal colours in tracebacks.
ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")
DEFAULT_CHECK_TIMEOUT_S = 60
SETUP_TIMEOUT_S = 300  # the other cells: the first one may start the whole lab


@dataclass
class CellResult:
    """What one code cell did. Graded checks carry points; other cells only matter when they raise."""

    cell: int  # the n-th code cell (0-based); hidden checks continue the numbering
    name: str
    graded: bool
    passed: bool
    message: str = ""
    points: float = 0.0
    status: str = "passed"  # passed | failed | timeout | edited-failed | edited-passed ... see outcome()
    hidden: bool = False
    edited: bool = False
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return self.points if self.passed else 0


@dataclass
class GradeResult:
    notebook: str
    cells: list[CellResult] = field(default_factory=list)
    hidden_included: bool = False

    @property
    def checks(self) -> list[CellResult]:
        return [c for c in self.cells if c.graded]

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def all_passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    # list-like, so ``for r in grade(nb)`` keeps working
    def __iter__(self):
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "score": self.score, "max_score": self.max_score,
                "hidden_included": self.hidden_included,
                "checks": [{"name": c.name, "points": c.points, "score": c.score, "status": c.status,
                            "hidden": c.hidden, "edited": c.edited, "seconds": round(c.seconds, 2),
                            "message": c.message} for c in self.checks],
                "other_cells_that_raised": [{"cell": c.cell, "message": c.message}
                                            for c in self.cells if not c.graded and not c.passed]}

    def to_gradescope(self) -> dict:
        """Gradescope's autograder format: results.json."""
        tests = [{"name": c.name, "score": c.score, "max_score": c.points,
                  "output": ("EDITED: this check was changed; the original was run.\n" if c.edited else "")
                  + (c.message if not c.passed else "passed"),
                  "visibility": "after_published" if c.hidden else "visible"} for c in self.checks]
        return {"score": self.score, "tests": tests}


def checksum(source: str) -> str:
    """The fingerprint of a check's source, blind to trailing whitespace."""
    text = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_name(source: str) -> str | None:
    match = CHECK_MARK.search(source)
    return match.group("name").strip() if match else None


def check_points(cell_or_source) -> float:
    """``# points: N`` in the check's source, else the cell's metadata, else 1."""
    source = cell_or_source if isinstance(cell_or_source, str) else cell_or_source.source
    match = POINTS_MARK.search(source)
    if match:
        value = float(match.group("points"))
    elif not isinstance(cell_or_source, str):
        value = float(cell_or_source.get("metadata", {}).get("labkit", {}).get("points", 1))
    else:
        value = 1.0
    return int(value) if value.is_integer() else value


def graded_cells(notebook: nbformat.NotebookNode) -> dict[int, str]:
    code = [c for c in notebook.cells if c.cell_type == "code"]
    return {i: name for i, c in enumerate(code) if (name := check_name(c.source))}


def hidden_checks(directory: str | Path, notebook_path: str | Path) -> list[str]:
    """The sources of the instructor's hidden checks for this notebook (``DIR/<stem>.py``), one per check."""
    path = Path(directory) / (Path(notebook_path).stem + ".py")
    if not path.exists():
        return []
    text = path.read_text()
    starts = [m.start() for m in CHECK_MARK.finditer(text)]
    preamble = text[:starts[0]] if starts else ""
    checks = [text[a:b].strip() + "\n" for a, b in zip(starts, starts[1:] + [len(text)])]
    return ([preamble.strip() + "\n"] if preamble.strip() else []) + checks


def _reference_checks(notebook_path: Path) -> dict[str, str]:
    """Original check sources by name: from the solution of the same name, when the project has one."""
    from .exercises import SOLUTIONS

    solution = SOLUTIONS / notebook_path.name
    if not solution.exists() or solution.resolve() == notebook_path.resolve():
        return {}
    nb = nbformat.read(solution, as_version=4)
    return {name: c.source for c in nb.cells if c.cell_type == "code" and (name := check_name(c.source))}


def _error_text(cell: nbformat.NotebookNode) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            name, value = output.get("ename", "Error"), output.get("evalue", "")
            if name == "CheckFailed" or name == "AssertionError":
                return f"{name}: {value}".rstrip()
            last = [ANSI.sub("", line) for line in output.get("traceback", [])][-1:] or [f"{name}: {value}"]
            return last[0].strip() or f"{name}: {value}"
    return None


def _short_error(text: str) -> str:
    """The last exception line of a traceback (and its indented detail), without colours."""
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


def grade(notebook_path: str | Path, *, check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
          with_hidden: str | Path | None = None, timeout_s: float | None = None) -> GradeResult:
    """Run every code cell of the notebook in a fresh kernel, in order, and score the graded checks."""
    from nbclient import NotebookClient

    notebook_path = Path(notebook_path).resolve()
    notebook = nbformat.read(notebook_path, as_version=4)
    references = _reference_checks(notebook_path)
    setup_timeout = timeout_s or SETUP_TIMEOUT_S

    cells: list[tuple[nbformat.NotebookNode, bool, bool]] = []  # (cell, hidden, edited)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        edited = False
        name = check_name(cell.source)
        if name:
            stored = cell.get("metadata", {}).get("labkit", {}).get("checksum")
            original = references.get(name)
            if original is not None and checksum(original) != checksum(cell.source):
                edited, cell.source = True, original  # run the check as it was written, not as edited
            elif stored and stored != checksum(cell.source):
                edited = True
        cells.append((cell, False, edited))
    hidden_sources = hidden_checks(with_hidden, notebook_path) if with_hidden else []
    for source in hidden_sources:
        cells.append((nbformat.v4.new_code_cell(source), True, False))

    run = nbformat.v4.new_notebook(metadata=notebook.metadata)
    run.cells = [c for c, _, _ in cells]
    result = GradeResult(str(notebook_path), hidden_included=bool(with_hidden))
    with tempfile.TemporaryDirectory() as kernels:
        client = NotebookClient(run, timeout=setup_timeout, kernel_name="python3", allow_errors=True,
                                interrupt_on_timeout=True,
                                resources={"metadata": {"path": str(notebook_path.parent)}})
        _run_cells(client, cells, result, references, check_timeout_s, setup_timeout)
    present = {c.name for c in result.cells if c.graded}
    for name, source in references.items():
        if name not in present:  # a check cell deleted from the notebook still counts, as failed
            result.cells.append(CellResult(len(result.cells), name, True, False,
                                           "this check is missing from the notebook (deleted?)",
                                           check_points(source), "missing"))
    return result


def _this_python_kernel(directory: Path):
    """A kernel running this very Python (the venv with labkit), whatever kernelspecs the machine has."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec = directory / "labkit-grade"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "labkit grade", "language": "python"}))
    return KernelManager(kernel_name="labkit-grade", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(directory)]))


def _run_cells(client, cells, result: "GradeResult", references: dict, check_timeout_s: float,
               setup_timeout: float) -> None:
    """Each cell in turn; a graded check under its own timeout (the kernel is interrupted, the next runs).

    nbclient interrupts the kernel when a cell times out; the interrupted cell answers KeyboardInterrupt
    and the next cell runs in the same kernel.
    """
    with client.setup_kernel():
        for index, (cell, hidden, edited) in enumerate(cells):
            name = check_name(cell.source)
            graded = name is not None
            client.timeout = check_timeout_s if graded else setup_timeout
            cell.outputs = []
            started = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except Exception as exc:  # noqa: BLE001 - a dead kernel or a broken cell: this cell failed
                cell.outputs = [nbformat.v4.new_output("error", ename=type(exc).__name__, evalue=str(exc),
                                                       traceback=[f"{type(exc).__name__}: {exc}"])]
            seconds = time.monotonic() - started
            error = _error_text(cell)
            status = "passed" if error is None else "failed"
            if seconds >= client.timeout * 0.98 or (error or "").startswith("KeyboardInterrupt"):
                status, error = "timeout", f"timed out after {client.timeout:g} s (an endless loop, or a wait " \
                                           "that never ends?); the kernel was interrupted"
            if graded and edited:
                error = ("this check was edited; the original check was run. " + (error or "")).strip()
                if not references.get(name):  # nothing to compare with: an edited check earns nothing
                    status, error = "edited", "this check was edited (its checksum differs): it scores 0"
            result.cells.append(CellResult(index, name or f"cell {index}", graded, status == "passed", error or "",
                                           check_points(cell) if graded else 0.0, status, hidden, edited, seconds))


def _one_line(message: str, width: int = 150) -> str:
    text = " ".join(message.replace("CheckFailed:", "").split())
    return text if width <= 0 or len(text) <= width else text[: width - 1] + "…"


def _points(value: float) -> str:
    return f"{value:g}"


def report(result: GradeResult, verbose: bool = False) -> str:
    """The table a learner reads. A failing check's message is shown whole (under the table)."""
    graded = result.checks
    rows = [{"check": ("[hidden] " if r.hidden else "") + r.name + (" [EDITED]" if r.edited else ""),
             "result": r.status.upper(), "points": f"{_points(r.score)}/{_points(r.points)}",
             "why": "" if r.passed else _one_line(r.message, 0 if verbose else 80)} for r in graded]
    out = text_table(rows) if rows else "(this notebook has no graded checks)"
    failing = [r for r in graded if not r.passed]
    if failing:
        out += "\n\nWhy each failing check failed:"
        for r in failing:
            out += f"\n\n* {r.name}\n" + "\n".join("    " + line for line in r.message.splitlines())
    if verbose:
        passing = [r for r in graded if r.passed]
        out += "\n\nPassed: " + ", ".join(f"{r.name} ({r.seconds:.1f} s)" for r in passing) if passing else ""
    passed = sum(r.passed for r in graded)
    out += f"\n\n{passed} of {len(graded)} graded checks passed: {_points(result.score)} of " \
           f"{_points(result.max_score)} points"
    if result.all_passed:
        out += (" — all checks passed, the hidden ones included" if result.hidden_included
                else " — all visible checks passed (your instructor may run hidden ones)")
    edited = [r.name for r in graded if r.edited]
    if edited:
        out += "\nEdited checks (the original was run instead, where known): " + ", ".join(edited)
    broken = [r for r in result.cells if not r.graded and not r.passed]
    if broken:
        out += "\nOther cells that raised: " + ", ".join(
            f"cell {r.cell} ({(r.message.splitlines() or [''])[0][:80]})" for r in broken)
    return out


def write_results(result: GradeResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result.to_gradescope(), indent=1) + "\n")


__all__ = ["CellResult", "GradeResult", "grade", "report", "write_results", "graded_cells", "checksum",
           "check_points", "hidden_checks"]
