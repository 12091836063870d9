"""Show the Redis commands a pattern really sends: ``MONITOR`` on the lab's server while a block runs.

A lesson calls a helper — a heartbeat, a consumer group, a login counter — and the helper talks to Redis
from inside a service process or a pattern module, out of the learner's sight. ``captured`` opens a
``MONITOR`` connection for the duration of a ``with`` block and keeps every command, from any client (the
services included), whose arguments mention one of the strings you give (a key, a key prefix, a group
name). Commands a Lua script runs inside the server show up too, marked ``lua``.

    with captured(lab.redis.url, "lab:registry:claims:") as seen:
        time.sleep(1.2)          # one heartbeat
    print(seen)

Nothing is faked: the commands are the ones the server executed. ``MONITOR`` slows a server down a
little while it runs (every command is copied to the monitoring connection) — fine on a lab, not a habit
for production.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import redis


@dataclass
class Command:
    """One command as the server executed it."""

    t_s: float            # seconds since the capture began (server clock)
    client: str           # "127.0.0.1:51234", or "lua" for a command a script ran
    args: list[str]

    @property
    def name(self) -> str:
        return self.args[0].upper() if self.args else ""


def _short(arg: str, width: int) -> str:
    arg = arg if " " not in arg and arg else repr(arg)
    return arg if len(arg) <= width else arg[: width - 1] + "…"


@dataclass
class Captured:
    """The commands seen during a ``captured`` block, in the order the server ran them."""

    match: tuple[str, ...]
    commands: list[Command] = field(default_factory=list)

    def names(self) -> list[str]:
        """The command names, in order (``["SET", "PUBLISH", ...]``)."""
        return [c.name for c in self.commands]

    def only(self, *names: str) -> Captured:
        """The same capture, keeping only the commands with these names (``only("DEL", "PUBLISH")``)."""
        wanted = {n.upper() for n in names}
        return Captured(self.match, [c for c in self.commands if c.name in wanted])

    def lines(self, width: int = 72, limit: int = 80) -> list[str]:
        shown = [f"{c.t_s * 1000:8.1f} ms  {c.client:>15}  " + " ".join(_short(a, width) for a in c.args)
                 for c in self.commands[:limit]]
        if len(self.commands) > limit:
            shown.append(f"... and {len(self.commands) - limit} more")
        return shown

    def __str__(self) -> str:
        header = f"{len(self.commands)} commands mentioning {' or '.join(map(repr, self.match))}:"
        return "\n".join([header, *self.lines()])

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the text, not a dataclass repr
        printer.text(str(self))


@contextmanager
def captured(redis_url: str, *match: str, settle_s: float = 0.05) -> Iterator[Captured]:
    """Record, while the block runs, the commands whose arguments contain one of ``match`` (all if none).

    A thread reads the ``MONITOR`` feed; at the end of the block a marker ``ECHO`` from another connection
    tells it the block is over, so no command of the block is missed and none after it is kept.
    ``settle_s`` waits a moment first for commands already sent by other processes to land.
    """
    result = Captured(match)
    marker = f"labkit-capture-end-{uuid.uuid4().hex}"
    monitor_client = redis.Redis.from_url(redis_url, decode_responses=True, protocol=2)
    started: list[float] = []
    failure: list[BaseException] = []

    with monitor_client.monitor() as monitor:  # MONITOR is on once this returns: nothing is missed
        def read() -> None:
            try:
                while True:
                    at, client, args = _parse(monitor.connection.read_response())
                    if marker in args:
                        return
                    if not started:
                        started.append(at)
                    if not match or any(m in a for a in args for m in match):
                        result.commands.append(Command(at - started[0], client, args))
            except BaseException as error:  # noqa: BLE001 - reported to the caller below
                failure.append(error)

        reader = threading.Thread(target=read, name="labkit-monitor", daemon=True)
        reader.start()
        try:
            yield result
        finally:
            time.sleep(settle_s)
            with redis.Redis.from_url(redis_url, decode_responses=True) as other:
                other.echo(marker)
            reader.join(timeout=10)
    monitor_client.close()
    if failure:
        raise failure[0]
    if reader.is_alive():
        raise RuntimeError("the MONITOR feed never showed the end marker")


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def _parse(line: str | bytes) -> tuple[float, str, list[str]]:
    r"""One MONITOR line — ``1733090000.123456 [0 127.0.0.1:5555] "SET" "k" "a \"b\""`` — as (time, client,
    arguments). The server quotes every argument and escapes quotes, backslashes and unprintable bytes
    (``\xHH``); we undo that, so an argument with spaces stays one argument."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    at, rest = line.split(" ", 1)
    client_info, quoted = rest[1:].split("] ", 1)
    client = client_info.split(" ", 1)[1] if " " in client_info else client_info
    args, i = [], 0
    while i < len(quoted):
        if quoted[i] != '"':
            i += 1
            continue
        i, current = i + 1, []
        while quoted[i] != '"':
            if quoted[i] == "\\":
                code = quoted[i + 1]
                if code == "x":
                    current.append(chr(int(quoted[i + 2:i + 4], 16)))
                    i += 4
                    continue
                current.append(_ESCAPES.get(code, code))
                i += 2
                continue
            current.append(quoted[i])
            i += 1
        args.append("".join(current))
        i += 1
    return float(at), client, args
