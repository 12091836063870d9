"""Exercises are generated from solutions, never edited by hand.

In a solution notebook, code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` is the answer. The
exercise keeps everything else and puts a TODO stub in its place (which raises NotImplementedError, so
every graded check fails until the learner writes the code). Markdown cells tagged ``solution-only`` are
left out. ``labkit exercises check`` (and a test) fails when exercises/ no longer matches solutions/.

Graded check cells (``# GRADED CHECK: <name>``) come out read-only and undeletable (the ``editable`` and
``deletable`` metadata JupyterLab honours) and carry their points and the checksum of their source, so
``labkit grade`` reports a check a learner changed as edited. Wrong answers kept beside the solutions
(``solutions/wrong/``) and the instructor's hidden checks (``solutions/hidden/``) never reach exercises/.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from services.core.settings import PROJECT_ROOT

SOLUTIONS = PROJECT_ROOT / "solutions"
EXERCISES = PROJECT_ROOT / "exercises"
_BLOCK = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*(\n|$)",
                    re.MULTILINE | re.DOTALL)


def _stub(match: re.Match) -> str:
    indent = match.group("indent")
    return (f"{indent}# TODO: write your code here (see the instructions above)\n"
            f"{indent}raise NotImplementedError(\"exercise not solved yet\")\n")


def strip_solution(source: str) -> str:
    return _BLOCK.sub(_stub, source)


def exercise_from_solution(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    from .grade import check_name, check_points, checksum

    exercise = copy.deepcopy(solution)
    cells = []
    for cell in exercise.cells:
        if "solution-only" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = strip_solution(cell.source)
            cell.outputs, cell.execution_count = [], None
            name = check_name(cell.source)
            if name:
                cell.metadata["editable"] = False
                cell.metadata["deletable"] = False
                cell.metadata["labkit"] = {"check": name, "points": check_points(cell.source),
                                           "checksum": checksum(cell.source)}
        elif cell.cell_type == "markdown":
            cell.source = cell.source.replace(" (solution)", "")
        cells.append(cell)
    exercise.cells = cells
    return exercise


def _render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def _pairs():
    for solution_path in sorted(SOLUTIONS.glob("*.ipynb")):
        yield solution_path, EXERCISES / solution_path.name


def build_all() -> list[Path]:
    EXERCISES.mkdir(exist_ok=True)
    written = []
    for solution_path, exercise_path in _pairs():
        exercise = exercise_from_solution(nbformat.read(solution_path, as_version=4))
        exercise_path.write_text(_render(exercise))
        written.append(exercise_path)
    return written


def drift() -> list[Path]:
    """Exercise notebooks that are missing or differ from what their solution generates."""
    stale = []
    for solution_path, exercise_path in _pairs():
        expected = _render(exercise_from_solution(nbformat.read(solution_path, as_version=4)))
        if not exercise_path.exists() or exercise_path.read_text() != expected:
            stale.append(exercise_path)
    return stale


# --- known-wrong answers -------------------------------------------------------------------------------
# ``solutions/wrong/<notebook stem>/<name>.py`` is an answer a learner who half-understood the pattern
# would write. Its docstring says why it is wrong; ``# REFUSED BY: <check name>`` lines name the graded
# checks that must refuse it (at least one); each ``# REPLACES: <function or class>`` section replaces that
# top-level definition in the solution's cells. The test suite grades every one and asserts it is refused.

import ast  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

WRONG = SOLUTIONS / "wrong"
HIDDEN = SOLUTIONS / "hidden"
_SECTION = re.compile(r"^# REPLACES:\s*(?P<name>\w+)\s*$", re.MULTILINE)
_REFUSED = re.compile(r"^# REFUSED BY:\s*(?P<check>.+?)\s*$", re.MULTILINE)


@dataclass
class WrongAnswer:
    path: Path
    why: str
    refused_by: list[str] = field(default_factory=list)
    replacements: dict[str, str] = field(default_factory=dict)

    @property
    def solution(self) -> Path:
        return SOLUTIONS / f"{self.path.parent.name}.ipynb"


def read_wrong(path: Path) -> WrongAnswer:
    text = path.read_text()
    why = ast.get_docstring(ast.parse(text)) or ""
    sections = list(_SECTION.finditer(text))
    if not sections:
        raise ValueError(f"{path}: no '# REPLACES: <name>' section")
    replacements = {m.group("name"): text[m.end():(sections[i + 1].start() if i + 1 < len(sections) else len(text))]
                    .strip("\n") + "\n" for i, m in enumerate(sections)}
    return WrongAnswer(path, why, [m.group("check") for m in _REFUSED.finditer(text)], replacements)


def wrong_answers() -> list[WrongAnswer]:
    return [read_wrong(p) for p in sorted(WRONG.glob("*/*.py"))]


def _replace_definition(source: str, name: str, code: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            lines = source.splitlines(keepends=True)
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            return "".join(lines[:start]) + code + "".join(lines[node.end_lineno:])
    return None


def apply_wrong(solution: nbformat.NotebookNode, wrong: WrongAnswer) -> nbformat.NotebookNode:
    """The solution notebook with the wrong answer's definitions put in place of the right ones."""
    from .grade import check_name

    notebook = copy.deepcopy(solution)
    for name, code in wrong.replacements.items():
        for cell in notebook.cells:
            if cell.cell_type == "code" and not check_name(cell.source):
                replaced = _replace_definition(cell.source, name, code)
                if replaced is not None:
                    cell.source = replaced
                    break
        else:
            raise ValueError(f"{wrong.path}: no definition of {name!r} in {wrong.solution.name}")
    return notebook
