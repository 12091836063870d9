"""Helpers for graded check cells.

A graded check cell starts with ``# GRADED CHECK: <what it checks>`` and fails with an AssertionError that
says what was expected, what was found, and a hint. ``labkit grade`` collects them into a summary.

    # GRADED CHECK: remember() stores the value
    check.equal(r.get(key), "covered", what="the value at " + key, hint="use r.set(key, value, ex=ttl_s)")
"""

from __future__ import annotations

from typing import Any, Callable


class CheckFailed(AssertionError):
    pass


def fail(expected: str, found: Any, hint: str = "") -> None:
    message = f"\n  Expected: {expected}\n  Found:    {found!r}" if not isinstance(found, str) \
        else f"\n  Expected: {expected}\n  Found:    {found}"
    if hint:
        message += f"\n  Hint:     {hint}"
    raise CheckFailed(message)


def that(condition: bool, expected: str, found: Any, hint: str = "") -> None:
    if not condition:
        fail(expected, found, hint)


def equal(actual: Any, expected: Any, what: str, hint: str = "") -> None:
    if actual != expected:
        fail(f"{what} == {expected!r}", actual, hint)


def between(value: float | None, low: float, high: float, what: str, hint: str = "") -> None:
    if value is None or not (low <= value <= high):
        fail(f"{low} <= {what} <= {high}", value, hint)


def solved(func: Callable, *args, **kwargs) -> Any:
    """Call the learner's function; a TODO stub still in place becomes a clear failure, not a traceback."""
    try:
        return func(*args, **kwargs)
    except NotImplementedError:
        fail(f"{func.__name__}() to be written", "it still raises NotImplementedError (the TODO stub)",
             "replace the TODO in the exercise cell with your code and run that cell again")
