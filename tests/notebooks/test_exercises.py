"""Every solution passes all its graded checks; every unsolved exercise fails each one; they match.

The lesson notebooks in notebooks/ are collected by nbval directly (see pyproject.toml).
"""

from pathlib import Path

import pytest

from labkit.exercises import EXERCISES, HIDDEN, SOLUTIONS, drift
from labkit.grade import grade, report

SOLUTION_NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))


def _ids(paths):
    return [p.stem for p in paths]


def test_there_are_solutions_to_grade():
    assert SOLUTION_NOTEBOOKS, "solutions/ holds no notebooks"


def test_exercises_match_their_solutions():
    assert drift() == [], "run `labkit exercises build` and commit the result"


@pytest.mark.parametrize("solution", SOLUTION_NOTEBOOKS, ids=_ids(SOLUTION_NOTEBOOKS))
def test_solution_passes_every_graded_check(solution: Path):
    """The instructor's hidden checks included; and the total is the sum of the checks' points."""
    results = grade(solution, with_hidden=HIDDEN)
    graded = [r for r in results if r.graded]
    assert graded, f"{solution.name} has no graded checks"
    assert all(r.passed for r in results), report(results)
    as_json = results.to_json()
    assert as_json["score"] == as_json["max_score"] == sum(c["points"] for c in as_json["checks"])
    hidden = HIDDEN / f"{solution.stem}.py"
    assert any(r.hidden for r in graded) == hidden.exists()


@pytest.mark.parametrize("solution", SOLUTION_NOTEBOOKS, ids=_ids(SOLUTION_NOTEBOOKS))
def test_unsolved_exercise_fails_every_graded_check(solution: Path):
    results = grade(EXERCISES / solution.name)
    graded = [r for r in results if r.graded]
    assert graded
    passing = [r.name for r in graded if r.passed]
    assert not passing, f"these checks pass without a solution, so they prove nothing: {passing}"
    assert all(r.message for r in graded), "every failing check must say why"
