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


# --- scoring: points, totals, timeouts, edited and hidden checks (a real kernel, no lab needed) ---------

import json  # noqa: E402

from labkit.grade import check_points, checksum, grade, report, write_results  # noqa: E402


def _notebook(tmp_path, *sources, name="nb.ipynb", metadata=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for cell, extra in zip(nb.cells, metadata or []):
        cell.metadata.update(extra)
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_points_come_from_the_points_line_else_metadata_else_one():
    assert check_points("# GRADED CHECK: a\n# points: 3\nassert True") == 3
    cell = nbformat.v4.new_code_cell("# GRADED CHECK: a\nassert True", metadata={"labkit": {"points": 2}})
    assert check_points(cell) == 2
    assert check_points("# GRADED CHECK: a\nassert True") == 1


def test_generated_check_cells_are_read_only_with_points_and_checksum():
    nb = nbformat.v4.new_notebook()
    source = "# GRADED CHECK: x is two\n# points: 2\nassert x == 2"
    nb.cells = [nbformat.v4.new_code_cell("x = 2"), nbformat.v4.new_code_cell(source)]
    check_cell = exercise_from_solution(nb).cells[1]
    assert check_cell.metadata["editable"] is False and check_cell.metadata["deletable"] is False
    assert check_cell.metadata["labkit"] == {"check": "x is two", "points": 2, "checksum": checksum(source)}


def test_total_is_the_sum_of_points_and_an_endless_loop_fails_only_its_check(tmp_path):
    path = _notebook(tmp_path, "x = 2",
                     "# GRADED CHECK: x is two\n# points: 2\nassert x == 2",
                     "# GRADED CHECK: never ends\nwhile True:\n    pass",
                     "# GRADED CHECK: x is three\n# points: 3\nassert x == 3, 'x is ' + str(x) + ' ' + 'y' * 300",
                     "# GRADED CHECK: still graded after the timeout\nassert x == 2")
    result = grade(path, check_timeout_s=3)
    by_name = {c.name: c for c in result.checks}
    assert by_name["never ends"].status == "timeout" and not by_name["never ends"].passed
    assert by_name["still graded after the timeout"].passed, "the kernel must survive a timed-out check"
    assert (result.score, result.max_score) == (3, 7)
    assert result.to_json()["score"] == sum(c["score"] for c in result.to_json()["checks"])
    text = report(result)
    assert "y" * 300 in text, "a failing check's message is never truncated"
    assert "3 of 7 points" in text
    write_results(result, tmp_path / "results.json")
    gradescope = json.loads((tmp_path / "results.json").read_text())
    assert gradescope["score"] == 3
    assert {t["name"]: (t["score"], t["max_score"]) for t in gradescope["tests"]}["x is two"] == (2, 2)
    assert all(t["visibility"] == "visible" for t in gradescope["tests"])


def test_an_edited_check_is_reported_and_scores_nothing(tmp_path):
    original = "# GRADED CHECK: x is two\nassert x == 2"
    path = _notebook(tmp_path, "x = 3", "# GRADED CHECK: x is two\nassert True  # edited to pass",
                     metadata=[{}, {"labkit": {"checksum": checksum(original)}}])
    result = grade(path)
    (check_result,) = result.checks
    assert check_result.edited and not check_result.passed and result.score == 0
    assert "EDITED" in report(result)


def test_hidden_checks_run_after_the_notebook_and_the_learner_sees_visible_only(tmp_path):
    path = _notebook(tmp_path, "x = 2", "# GRADED CHECK: x is two\nassert x == 2", name="ex.ipynb")
    visible = grade(path)
    assert "all visible checks passed" in report(visible) and "all checks passed" not in report(visible)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "ex.py").write_text("# GRADED CHECK: x is even\n# points: 2\nassert x % 2 == 0\n\n"
                                  "# GRADED CHECK: x is large\nassert x > 100, 'x is small'\n")
    result = grade(path, with_hidden=hidden)
    assert [(c.name, c.hidden, c.passed) for c in result.checks] == [
        ("x is two", False, True), ("x is even", True, True), ("x is large", True, False)]
    assert (result.score, result.max_score) == (3, 4)
    assert {t["name"]: t["visibility"] for t in result.to_gradescope()["tests"]}["x is large"] == "after_published"


# --- the recording client the checks hand to a learner's function (a real server) ----------------------

def test_recording_client_writes_down_each_round_trip_and_runs_the_hook_between_them(r):
    seen = []
    watched = check.recording(r, after_each=lambda trip: seen.append(r.exists("lab:test:rec")))
    r.delete("lab:test:rec")
    watched.set("lab:test:rec", "1")
    with watched.pipeline(transaction=True) as pipe:
        pipe.incr("lab:test:rec").pexpire("lab:test:rec", 5000).execute()
    watched.eval("return redis.call('DEL', KEYS[1])", 1, "lab:test:rec")
    assert [t.names for t in watched.round_trips] == [["SET"], ["INCRBY", "PEXPIRE"], ["EVAL"]]
    assert [t.transaction for t in watched.round_trips] == [False, True, False]
    assert seen == [1, 1, 0], "the hook runs after every round trip, seeing the server as it is then"
    assert "KEYS" not in watched.commands and watched.commands[0] == "SET"


def test_a_check_refuses_a_function_that_ignores_the_client_it_was_given(r):
    watched = check.recording(r)
    r.get("lab:test:unrelated")  # the notebook's own client: not recorded
    with pytest.raises(AssertionError, match="client passed to it"):
        check.used_the_client(watched, "live_instances")
