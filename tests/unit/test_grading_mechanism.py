"""Exercises come from solutions; check helpers say expected/found/hint."""

import nbformat
import pytest

from labkit import check
from labkit.exercises import exercise_from_solution, strip_solution
from labkit.grade import _short_error, graded_cells


def test_solution_block_becomes_a_todo_stub_at_its_indentation():
    source = "def f(x):\n    # BEGIN SOLUTION\n    return x * 2\n    # END SOLUTION\n\nprint(1)\n"
    stripped = strip_solution(source)
    assert "return x * 2" not in stripped
    assert "    # TODO: write your code here" in stripped
    assert '    raise NotImplementedError("exercise not solved yet")' in stripped
    assert stripped.endswith("\nprint(1)\n")
    compile(stripped, "cell", "exec")


def test_solution_only_cells_are_dropped_and_outputs_cleared():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Warm-up (solution)"),
                nbformat.v4.new_markdown_cell("why it works", metadata={"tags": ["solution-only"]}),
                nbformat.v4.new_code_cell("x = 1")]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="1")]
    exercise = exercise_from_solution(nb)
    assert [c.source for c in exercise.cells] == ["# Warm-up", "x = 1"]
    assert exercise.cells[1].outputs == []


def test_graded_cells_are_found_by_their_marker():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_markdown_cell("text"),
                nbformat.v4.new_code_cell("# GRADED CHECK: a is one\nassert a == 1")]
    assert graded_cells(nb) == {1: "a is one"}


def test_check_failure_says_expected_found_and_hint():
    with pytest.raises(AssertionError) as failure:
        check.equal(3, 4, what="the answer", hint="add one")
    text = str(failure.value)
    assert "Expected: the answer == 4" in text and "Found:    3" in text and "Hint:     add one" in text


def test_check_solved_turns_the_stub_into_a_clear_failure():
    def todo():
        raise NotImplementedError("exercise not solved yet")

    with pytest.raises(AssertionError, match="TODO stub"):
        check.solved(todo)


def test_short_error_keeps_the_exception_and_its_message():
    text = "\x1b[0;31mTraceback\x1b[0m\n  File x\nCheckFailed: \n  Expected: a\n  Found:    b\n"
    assert _short_error(text).startswith("CheckFailed")
    assert "Expected: a" in _short_error(text)
