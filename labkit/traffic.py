"""The lab's one traffic generator: ``labkit load`` and every experiment that sends HTTP traffic use it.

**Open loop** (``open_loop``): request *i* is due at ``i / rate`` seconds, whatever the system does, like
customers who do not wait for each other. Its latency is measured from that **intended** time, not from
when it was finally sent: a generator that waits for answers before sending more quietly sends fewer
requests exactly when the system is slow, so its percentiles hide the slowness ("coordinated omission").
Measured from the intended time, a stalled server shows up as the stall it is. ``concurrency`` caps the
requests in flight (the connections a load generator has); without it every request gets its own task, so
a hung answer delays nothing. A request that could not start before the run's end is not sent.

**Closed loop** (``closed_loop``): ``concurrency`` workers, each sending its next request as soon as the
previous answer arrives — the throughput ceiling; there is no schedule, so latency is the service's only.

One clock (``time.perf_counter``, seconds since the traffic began) and one vocabulary for outcomes: the HTTP
``status``, or ``status`` 0 with a named transport ``error`` (``TRANSPORT_ERRORS``). One record per request:

``seq`` (the order it was scheduled in), ``label`` (what kind of request, the caller's word), ``method``,
``path``, ``intended_s``, ``sent_s``, ``answered_s``, ``latency_ms`` (answered - intended), ``service_ms``
(answered - sent), ``status``, ``error``, ``ok`` (no transport error, status below 500), ``served_by``
(``X-Served-By``: which instance answered), ``x_cache``, ``retry_after`` — plus whatever ``on_answer``
adds.

Hooks for experiments: ``actions`` (a plain function run at its time, in a thread, its start and end
recorded as a mark), ``alongside`` (coroutines given the clock, running with the traffic), ``watch``
(called every ``watch_every_s`` with the clock's reading and the records so far) and ``until`` (keep the
traffic going past its duration until the records say so).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, NamedTuple

import aiohttp
import pandas as pd

#: A request that got no HTTP answer: the name its record carries in ``error`` (its ``status`` is 0).
TRANSPORT_ERRORS = {
    "timeout": "no answer within the request's timeout",
    "connect_error": "the connection was refused or could not be opened",
    "disconnected": "the server closed the connection before answering",
    "client_error": "any other failure on the client's side of the connection",
}


def transport_error(exc: BaseException) -> str:
    """The ``TRANSPORT_ERRORS`` name of an exception aiohttp raised instead of an answer."""
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's own timeouts are asyncio.TimeoutError subclasses
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_error"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return "disconnected"
    return "client_error"


#: The fields of every record, in order (``on_answer`` may add more).
RECORD_FIELDS = ["seq", "label", "method", "path", "intended_s", "sent_s", "answered_s", "latency_ms", "service_ms",
                 "status", "error", "ok", "served_by", "x_cache", "retry_after"]


class Request(NamedTuple):
    """One request to send (immutable, so one can be sent many times): ``path`` is appended to the
    generator's ``base_url``; ``label`` says what kind of request it is, in the caller's words."""

    method: str
    path: str
    body: dict | None = None
    label: str = ""
    headers: dict | None = None


#: ``on_answer(request, status, body)``: a dict of extra fields for the record (a created id, say), or None.
OnAnswer = Callable[[Request, int, bytes], "dict | None"]


@dataclass
class Traffic:
    """What a run produced: one record per request, one mark per action, and how the schedule went."""

    records: list[dict] = field(default_factory=list)
    marks: list[dict] = field(default_factory=list)
    scheduled: int | None = None  # open loop: requests due within the duration (None: closed loop)
    wall_s: float = 0.0

    def frame(self) -> pd.DataFrame:
        """The records in the order they were scheduled."""
        if not self.records:
            return pd.DataFrame(columns=RECORD_FIELDS)
        return pd.DataFrame(self.records).sort_values("seq", kind="stable").reset_index(drop=True)


async def send(session: aiohttp.ClientSession, base_url: str, request: Request, seq: int, t0: float,
               intended: float, timeout_s: float | None = None, on_answer: OnAnswer | None = None,
               sent: float | None = None) -> dict:
    """Send one request now and return its record; ``intended`` is when it was due (``perf_counter``),
    ``sent`` when the sender decided to send it (default: now)."""
    sent = time.perf_counter() if sent is None else sent
    status, error, headers, extra = 0, "", {}, None
    own_timeout = {"timeout": aiohttp.ClientTimeout(total=timeout_s)} if timeout_s is not None else {}  # else the session's
    try:
        async with session.request(request.method, base_url + request.path, json=request.body,
                                   headers=request.headers, **own_timeout) as response:
            body = await response.read()
            status, headers = response.status, response.headers
        if on_answer is not None:
            extra = on_answer(request, status, body)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        error = transport_error(exc)
    answered = time.perf_counter()
    return {"seq": seq, "label": request.label, "method": request.method, "path": request.path,
            "intended_s": intended - t0, "sent_s": sent - t0, "answered_s": answered - t0,
            "latency_ms": (answered - intended) * 1000, "service_ms": (answered - sent) * 1000,
            "status": status, "error": error, "ok": not error and status < 500,
            "served_by": headers.get("X-Served-By", ""), "x_cache": headers.get("X-Cache", ""),
            "retry_after": headers.get("Retry-After", ""), **(extra or {})}


async def _sleep_until(moment: float) -> None:
    while (delay := moment - time.perf_counter()) > 0:  # timers may wake a little early
        await asyncio.sleep(delay)


async def _run_actions(actions, t0: float, marks: list[dict]) -> None:
    """Each ``(at_s, label, function)`` at its time, in a thread (it may block: a restart takes a while)."""
    loop = asyncio.get_running_loop()
    for at_s, label, action in sorted(actions, key=lambda a: a[0]):
        await _sleep_until(t0 + at_s)
        began = time.perf_counter() - t0  # the moment the action began, not when it returned
        await loop.run_in_executor(None, action)
        marks.append({"t_s": began, "end_s": time.perf_counter() - t0, "event": label})


async def open_loop(session: aiohttp.ClientSession, base_url: str, next_request: Callable[[int], Request],
                    rate: float, duration_s: float, *, concurrency: int | None = None,
                    timeout_s: float | None = None, on_answer: OnAnswer | None = None,
                    actions: list[tuple[float, str, Callable[[], object]]] = (),
                    alongside: list[Callable[[Callable[[], float]], Awaitable]] = (),
                    watch: Callable[[float, list[dict]], Awaitable] | None = None, watch_every_s: float = 0.05,
                    until: Callable[[list[dict]], bool] | None = None,
                    max_duration_s: float | None = None) -> Traffic:
    """Send ``next_request(i)`` at ``t0 + i / rate`` for ``duration_s`` (longer while ``until(records)`` is
    false, up to ``max_duration_s``), at most ``concurrency`` in flight if given. See the module docstring."""
    traffic = Traffic(scheduled=int(rate * duration_s))
    records = traffic.records
    t0 = time.perf_counter()
    slots = asyncio.Semaphore(concurrency) if concurrency else None

    def clock() -> float:
        return time.perf_counter() - t0

    def going_on(at_s: float) -> bool:
        return at_s < duration_s or (until is not None and at_s < (max_duration_s or duration_s)
                                     and not until(records))

    async def one(seq: int, intended: float) -> None:
        try:
            records.append(await send(session, base_url, next_request(seq), seq, t0, intended, timeout_s, on_answer))
        finally:
            if slots is not None:
                slots.release()

    async def watching() -> None:
        while going_on(now := clock()):
            await watch(now, records)
            await asyncio.sleep(watch_every_s)

    helpers = [asyncio.create_task(act(clock)) for act in alongside]
    helpers.append(asyncio.create_task(_run_actions(actions, t0, traffic.marks)))
    if watch is not None:
        helpers.append(asyncio.create_task(watching()))
    in_flight: set[asyncio.Task] = set()
    for seq in itertools.count():
        intended = t0 + seq / rate
        if not going_on(intended - t0):
            break
        await _sleep_until(intended)
        if slots is not None:
            await slots.acquire()
        if not going_on(clock()):  # behind schedule: it (and the rest) could not start within the run
            if slots is not None:
                slots.release()
            break
        task = asyncio.create_task(one(seq, intended))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight, *helpers)
    traffic.wall_s = clock()
    return traffic


async def closed_loop(session: aiohttp.ClientSession, base_url: str, next_request: Callable[[int], Request],
                      concurrency: int, *, duration_s: float | None = None, requests: int | None = None,
                      timeout_s: float | None = None, on_answer: OnAnswer | None = None,
                      watch: Callable[[float, list[dict]], Awaitable] | None = None,
                      watch_every_s: float = 0.25) -> Traffic:
    """``concurrency`` workers sending back to back until ``duration_s`` has passed or ``requests`` were sent.
    A request is due when a worker takes it, so ``intended_s`` equals ``sent_s``."""
    traffic = Traffic()
    records = traffic.records
    t0 = time.perf_counter()
    taken = itertools.count()
    done = False

    def more(now: float) -> bool:
        return duration_s is None or now - t0 < duration_s

    async def worker() -> None:
        while more(now := time.perf_counter()):  # one reading: the check and the record agree
            seq = next(taken)
            if requests is not None and seq >= requests:
                return
            records.append(await send(session, base_url, next_request(seq), seq, t0, now, timeout_s, on_answer, sent=now))

    async def watching() -> None:
        while not done:
            await watch(time.perf_counter() - t0, records)
            await asyncio.sleep(watch_every_s)

    watcher = asyncio.create_task(watching()) if watch is not None else None
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = True
    if watcher is not None:
        await watcher
    traffic.wall_s = time.perf_counter() - t0
    return traffic
