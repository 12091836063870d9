"""Every known-wrong answer (solutions/wrong/) is refused by at least one graded check — the ones it names.

A check that a plausible wrong answer passes proves nothing about the skill; these answers are the ones a
learner who half-understood the pattern writes. Each is put in place of the solution's code in a temporary
copy of the solution notebook, graded like a learner's notebook, and must fail.
"""

from pathlib import Path

import nbformat
import pytest

from labkit.exercises import SOLUTIONS, WRONG, apply_wrong, wrong_answers
from labkit.grade import grade, report

WRONG_ANSWERS = wrong_answers()


def test_every_exercise_has_at_least_two_known_wrong_answers():
    per_exercise = {p.stem: 0 for p in SOLUTIONS.glob("*.ipynb")}
    for wrong in WRONG_ANSWERS:
        per_exercise[wrong.path.parent.name] += 1
    assert all(n >= 2 for n in per_exercise.values()), per_exercise


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=[f"{w.path.parent.name}/{w.path.stem}" for w in WRONG_ANSWERS])
def test_wrong_answer_is_refused_by_a_graded_check(wrong, tmp_path: Path):
    assert wrong.why, f"{wrong.path}: say in its docstring why the answer is wrong"
    assert wrong.refused_by, f"{wrong.path}: name the check(s) that refuse it with '# REFUSED BY: <check>'"
    notebook = apply_wrong(nbformat.read(wrong.solution, as_version=4), wrong)
    path = tmp_path / wrong.solution.name
    nbformat.write(notebook, path)
    result = grade(path)
    failed = {c.name for c in result.checks if not c.passed}
    names = {c.name for c in result.checks}
    for expected in wrong.refused_by:
        assert expected in names, f"{wrong.path}: no check named {expected!r}; checks: {sorted(names)}"
    assert failed & set(wrong.refused_by), (
        f"{wrong.path.relative_to(WRONG.parent.parent)} passed the checks meant to refuse it "
        f"({wrong.refused_by}): {wrong.why}\n{report(result)}")
