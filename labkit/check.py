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


# --- watching how an answer does its work --------------------------------------------------------------
# A result at one moment can be right for the wrong reason: a TTL read back is in range whether SET carried
# it or a second EXPIRE did; a rate limiter in three calls counts right when nobody races it. So some checks
# hand the learner's function a *recording* client: the same server, but every round trip it makes is
# written down (the commands, and whether they ran as one MULTI/EXEC transaction), and ``after_each`` can
# run something between two round trips — a writer committing, a reader missing — exactly where a
# non-atomic answer has its hole.

import redis as _redis
from redis.client import Pipeline as _Pipeline


class RoundTrip:
    """One request/response exchange with the server: one command, or a whole pipeline."""

    def __init__(self, commands: list[tuple], transaction: bool = False):
        self.commands = [tuple(str(part) for part in command) for command in commands]
        self.transaction = transaction

    @property
    def names(self) -> list[str]:
        return [command[0].upper() for command in self.commands]

    def __repr__(self) -> str:
        inner = ", ".join(" ".join(command[:2]) for command in self.commands)
        return f"{'MULTI[' if self.transaction else '['}{inner}]"


class _RecordingPipeline(_Pipeline):
    recorder: "RecordingRedis"

    def execute(self, raise_on_error: bool = True):
        stack = [args for args, _options in self.command_stack]
        try:
            return super().execute(raise_on_error)
        finally:
            if stack:
                self.recorder._record(stack, transaction=self.transaction)

    def immediate_execute_command(self, *args, **options):  # WATCH and the reads after it: one trip each
        try:
            return super().immediate_execute_command(*args, **options)
        finally:
            self.recorder._record([args])


class RecordingRedis(_redis.Redis):
    """A Redis client on the same connection pool that writes down every round trip it makes."""

    def __init__(self, connection_pool, after_each: Callable[[RoundTrip], None] | None = None):
        super().__init__(connection_pool=connection_pool)
        self.round_trips: list[RoundTrip] = []
        self.after_each = after_each

    def _record(self, commands: list[tuple], transaction: bool = False) -> None:
        trip = RoundTrip(commands, transaction)
        self.round_trips.append(trip)
        if self.after_each is not None:
            hook, self.after_each = self.after_each, None  # the hook's own commands are not recorded
            try:
                hook(trip)
            finally:
                self.after_each = hook

    def execute_command(self, *args, **options):
        try:
            return super().execute_command(*args, **options)
        finally:
            self._record([args])

    def pipeline(self, transaction: bool = True, shard_hint=None):
        pipe = _RecordingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.recorder = self
        return pipe

    @property
    def commands(self) -> list[str]:
        """Every command name sent, in order (upper case), pipelines and transactions flattened."""
        return [name for trip in self.round_trips for name in trip.names]

    def reset(self) -> None:
        self.round_trips.clear()


def recording(r: _redis.Redis, after_each: Callable[[RoundTrip], None] | None = None) -> RecordingRedis:
    """A client like ``r`` that records each round trip; ``after_each(trip)`` runs after every one."""
    return RecordingRedis(r.connection_pool, after_each)


def used_the_client(recorder: RecordingRedis, func_name: str) -> None:
    """Fail clearly when the learner's function sent nothing through the client it was given."""
    that(bool(recorder.round_trips), f"{func_name}() to send its commands through the client passed to it",
         "no command went through that client",
         "use the r parameter of your function, not the notebook's global client")
