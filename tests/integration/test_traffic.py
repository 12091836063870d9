"""``labkit.traffic``, the one generator ``labkit load`` and the experiments use: its clock, its names for
failures and its hooks, against real sockets (a port nobody listens on, a server that accepts and never
answers) and the session's gateway. Properties only, never how fast anything was."""

from __future__ import annotations

import socket
import time

import aiohttp
import numpy as np
import pandas as pd
import pytest

from labkit import procs
from labkit.auth import gateway_headers
from labkit.coroutines import run_async
from labkit.traffic import TRANSPORT_ERRORS, Request, closed_loop, open_loop

HEALTH = Request("GET", "/health", label="health")


def run_open(base_url: str, rate: float, duration_s: float, **kwargs):
    async def main():
        async with aiohttp.ClientSession() as session:
            return await open_loop(session, base_url, lambda _: HEALTH, rate, duration_s, **kwargs)
    return run_async(main())


@pytest.fixture
def silent_server():
    """A server that accepts connections (the kernel completes the handshake) and never answers: a stall."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_refused_connection_is_recorded_by_name_on_the_intended_schedule():
    traffic = run_open(f"http://127.0.0.1:{procs.free_port()}", rate=20, duration_s=0.5)
    records = traffic.frame()
    assert traffic.scheduled == 10 and 0 < len(records) <= 10
    assert (records["error"] == "connect_error").all() and (records["status"] == 0).all()
    assert not records["ok"].any()
    assert set(records["error"]) <= set(TRANSPORT_ERRORS)
    assert np.allclose(records["intended_s"], records["seq"] / 20)  # request i is due at i / rate
    assert (records["sent_s"] >= records["intended_s"] - 1e-6).all()  # never sent before it was due


def test_a_stalled_server_shows_in_latency_from_the_intended_time(silent_server):
    # One request in flight at a time, each timing out after 0.3 s, while one is due every 50 ms: the
    # second cannot be sent before the first has given up, so it waited, and its latency says so.
    traffic = run_open(silent_server, rate=20, duration_s=0.5, concurrency=1, timeout_s=0.3)
    records = traffic.frame()
    assert len(records) >= 2
    assert (records["error"] == "timeout").all() and (records["status"] == 0).all()
    second = records.iloc[1]
    assert second["sent_s"] >= records.iloc[0]["sent_s"] + 0.25  # held back by the stalled first request
    waited_ms = (records["sent_s"] - records["intended_s"]) * 1000
    assert np.allclose(records["latency_ms"], records["service_ms"] + waited_ms)
    assert second["latency_ms"] > second["service_ms"] + 100  # the wait is part of the latency


def test_an_action_runs_at_its_time_and_is_marked():
    ran_at = []
    traffic = run_open(f"http://127.0.0.1:{procs.free_port()}", rate=10, duration_s=0.6,
                       actions=[(0.3, "the fault", lambda: ran_at.append(time.perf_counter()))])
    (mark,) = traffic.marks
    assert mark["event"] == "the fault" and 0.3 <= mark["t_s"] <= mark["end_s"]
    assert len(ran_at) == 1


def test_watch_sees_the_clock_and_until_extends_the_run():
    seen = []

    async def watch(now, records):
        seen.append((now, len(records)))

    traffic = run_open(f"http://127.0.0.1:{procs.free_port()}", rate=20, duration_s=0.2, watch=watch,
                       until=lambda records: len(records) >= 12, max_duration_s=10)
    assert len(traffic.records) >= 12  # 4 were scheduled within 0.2 s; it went on until 12 had answered
    assert traffic.frame()["intended_s"].max() < 10
    times = [now for now, _ in seen]
    assert len(times) >= 2 and times == sorted(times)


def test_gateway_answers_carry_status_and_the_instance(settings):
    read = Request("GET", "/api/policies/POL-000001", label="read")

    async def main():
        async with aiohttp.ClientSession(headers=gateway_headers(settings, ask_the_service=True)) as session:
            return await closed_loop(session, settings.url_of("gateway"), lambda _: read, 2, requests=6)

    records = pd.DataFrame(run_async(main()).records)
    assert sorted(records["seq"]) == list(range(6))
    assert (records["status"] == 200).all() and (records["error"] == "").all() and records["ok"].all()
    assert records["served_by"].str.startswith("policy").all()
    assert (records["intended_s"] == records["sent_s"]).all()  # closed loop: due when a worker takes it


def test_every_record_has_the_documented_fields_in_order():
    from labkit.traffic import RECORD_FIELDS, Traffic

    traffic = run_open(f"http://127.0.0.1:{procs.free_port()}", rate=10, duration_s=0.2)
    assert list(traffic.records[0]) == RECORD_FIELDS
    assert list(Traffic().frame().columns) == RECORD_FIELDS  # an empty run is an empty table, not an error
