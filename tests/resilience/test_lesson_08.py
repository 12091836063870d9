"""Lesson 08's read-outs (``labkit.experiments.resilience``) on real runs against the private lab: the
per-kind summary, the slow-knob window, the eviction table and the squeeze in words. Each asserts what the
lesson prints follows from the run's own numbers, never how fast anything was."""

from __future__ import annotations

from labkit import faults
from waiting import wait_for  # tests/waiting.py
from labkit.experiments import resilience


def _traffic(lab):
    def an_active_policy():
        # This private lab is the one the fault tests broke: until the gateway has seen the services healthy
        # again (two good probes) it may answer 503. Wait for the answer instead of reading an error as a list.
        answer = lab.client.get("/api/policies", params={"status": "active", "limit": 1})
        return answer.status_code == 200 and answer.json()["items"][0]
    policy = wait_for(an_active_policy, "the gateway to list an active policy")
    return [("GET", f"/api/policies/{policy['id']}", None),
            ("POST", "/api/claims", {"policy_id": policy["id"], "amount_cents": 100, "description": "lesson 08"})]


def test_a_slowed_service_shows_in_the_window_it_was_slow(private_lab):
    settings, before = private_lab.settings, {}
    requests, events = resilience.traffic_around_fault(settings, _traffic(private_lab), [
        (1.0, "policy +150 ms", lambda: before.update(faults.set_knobs("policy", settings, delay_ms=150))),
        (2.5, "back", lambda: faults.set_knobs("policy", settings, delay_ms=before["delay_ms"])),
    ], rate=20, duration_s=3.5)
    summary = resilience.requests_by_kind(requests)
    assert summary["sent"].sum() == len(requests) and set(summary.index) == {"read", "write"}
    assert summary["failed"].sum() == int((~requests["ok"]).sum())

    medians = resilience.window_medians(requests, events)
    read_path = next(p for p in medians.index if p.startswith("GET "))
    on, off = medians.attrs["on_s"], medians.attrs["off_s"]
    assert events["end_s"].iloc[0] == on < off == events["t_s"].iloc[1]
    # Every read due inside the window was sent after the delay took effect and answered no sooner than it.
    assert medians.loc[read_path, "during"] >= 150
    words = resilience.slowdown_in_words(medians)
    assert f"knob on from {on:.2f} s to {off:.2f} s" in words
    slower = medians.loc[read_path, "during"] - medians.loc[read_path, "outside"]
    slowed_line = words.splitlines()[0]  # the lines after it count cached answers per path
    assert (read_path in slowed_line) == (slower > 20)


def test_a_squeeze_is_told_from_its_own_numbers(private_lab):
    policy = private_lab.client.get("/api/policies", params={"status": "active", "limit": 1}).json()["items"][0]
    run = resilience.squeeze_memory(private_lab, "noeviction", policy["id"], claims=3, ballast=40)
    assert run["ballast_refused"] > 0, "Redis never got full: the test proves nothing"
    table = resilience.eviction_table({"noeviction": run})
    assert list(table.columns) == ["before", "after"]
    assert set(table.index) == {("noeviction", kind) for kind in resilience.squeeze_kinds()}

    words = resilience.squeeze_in_words(run)
    committed = int((run["answers"]["status"] == 201).sum())
    assert words.startswith(f"noeviction: Redis refused {run['ballast_refused']} of 40 ballast writes")
    assert f"claims: {committed} of 3 committed (201)" in words
    assert f"The system of record holds {len(run['stored'])}" in words
    assert f"{run['with_event']} of {len(run['stored'])} got their claim.submitted event" in words
    gone = [kind for kind in run["before"] if run["after"][kind] < run["before"][kind]]
    assert ("keys gone: none" in words) == (not gone)
