"""The sentences lessons print about their own runs: each says plainly when the run did not show the claim.

These functions only read a DataFrame of observations, so the observations are written out here."""

from __future__ import annotations

import pandas as pd

from labkit.experiments import caching, coherence, discovery, gateway, performance, resilience
from labkit.load import LoadResult


def _slow_summary(p99: dict[str, float], share_lo: float, requests: int = 536, req_per_s: float = 130.0,
                  load: list[float] | None = None) -> pd.DataFrame:
    """What ``gateway.slow_instance_summary`` returns, written out: round robin sends the slow one a third."""
    rows = {name: {"requests": requests, "p50_ms": 13.0, "p90_ms": 1010.0, "p99_ms": value,
                   "to_slow": round(requests / 3), "share_to_slow": 0.333, "fast_ones_p50_ms": 13.0,
                   "req_per_s": 36.0} for name, value in p99.items()}
    rows["least_outstanding"].update(share_to_slow=share_lo, to_slow=round(share_lo * requests), p90_ms=40.0,
                                     req_per_s=req_per_s)
    summary = pd.DataFrame(rows).T
    summary.attrs = {"slow_instance": "claims-41002-ab", "delay_ms": 2000.0, "fast_instances": 2,
                     "load_average": [1.6, 1.9] if load is None else load, "cores": 2}
    return summary


def test_least_outstanding_with_the_lower_p99_and_under_one_percent_is_the_claim():
    words = gateway.slow_instance_in_words(_slow_summary({"round_robin": 1171.0, "least_outstanding": 157.0}, 0.0056))
    assert "Lower p99: least_outstanding, 157 ms against round_robin's 1,171 ms (1,014 ms lower" in words
    assert "least_outstanding 0.6% (3 of 536)" in words and "round_robin 33.3%" in words
    assert "As the lesson says" in words and "NOT" not in words
    assert "load average 1.6 to 1.9 on 2 cores" in words


def test_a_share_over_one_percent_is_explained_by_the_measured_rate_and_load():
    words = gateway.slow_instance_in_words(_slow_summary({"round_robin": 1100.0, "least_outstanding": 1050.0}, 0.025,
                                                         req_per_s=40.0, load=[5.2, 6.8]))
    assert "did NOT show" in words and "As the lesson says" not in words
    assert "sent the slow instance 2.5% of its requests, over 1%" in words
    assert "about 0.3% was to be expected" in words  # 13 ms / (2 fast instances x 2000 ms)
    assert "oad average 5.2 to 6.8 on 2 cores" in words and "more cores than there are" in words


def test_a_quiet_machine_is_never_blamed():
    words = gateway.slow_instance_in_words(_slow_summary({"round_robin": 1100.0, "least_outstanding": 1050.0}, 0.025,
                                                         req_per_s=40.0, load=[0.4, 0.9]))
    assert "did NOT show" in words and "busy" not in words and "more cores than there are" not in words


def test_round_robin_with_the_lower_p99_is_said_plainly():
    words = gateway.slow_instance_in_words(_slow_summary({"round_robin": 219.0, "least_outstanding": 252.0}, 0.004))
    assert "Lower p99: round_robin" in words and "did NOT show" in words
    assert "was not the lowest" in words


def test_too_few_requests_for_a_p99_are_said_plainly():
    words = gateway.slow_instance_in_words(_slow_summary({"round_robin": 1100.0, "least_outstanding": 40.0}, 0.0,
                                                         requests=80))
    assert "did NOT show" in words and "too few steady-state requests" in words


def test_scans_that_hurt_lfu_more_than_lru_are_reported_as_not_shown():
    around = pd.DataFrame({"before": [0.6, 0.6], "after": [0.55, 0.4]}, index=["allkeys-lru", "allkeys-lfu"])
    around["drop"] = around["before"] - around["after"]
    assert "did NOT hurt LRU more" in caching.scans_in_words(around)


def test_scan_windows_are_measured_around_each_scan():
    rows = [{"policy": "allkeys-lru", "request": i, "hit": i < 10 or i >= 20} for i in range(30)]
    df = pd.DataFrame(rows)
    df.attrs["scans_at"] = [10]
    table = caching.hit_rate_around_scans(df, window=10)
    assert table.loc["allkeys-lru", "before"] == 1.0 and table.loc["allkeys-lru", "after"] == 0.0


def test_ttls_out_of_order_are_reported_as_not_shown():
    summary = pd.DataFrame({"hit_rate_after": [0.3, 0.2], "sor_loads_per_s_after": [10.0, 12.0]},
                           index=["TTL 0.25 s", "TTL 4 s"])
    assert "did NOT show" in caching.ttl_in_words(summary, 50)


def test_a_rejoin_that_never_registered_within_the_run_says_so():
    df = pd.DataFrame({"t_s": [0.1], "ok": [True], "served_by": ["a"], "answered_s": [0.11]})
    df.attrs["milestones"] = {"restarted": 1.0}
    assert "Not every moment was seen" in discovery.rejoin_in_words(df)


def test_a_kill_after_the_registration_had_already_expired_says_so():
    df = pd.DataFrame({"t_s": [0.1], "ok": [True], "served_by": ["a"]})
    df.attrs.update(milestones={"killed": 2.0, "gateway_stops_routing": 2.03, "registry_expires": 2.03},
                    ttl_left_at_kill_ms=-2)
    assert "ALREADY gone" in discovery.kill_in_words(df)


def test_a_stampede_that_did_not_happen_is_reported_as_not_shown():
    loads = pd.DataFrame({"protection": ["none", "lock", "xfetch"], "load_at_s": [0.1, 0.1, 0.1],
                          "refresh": [1, 1, 1]})
    assert "did NOT show the stampede" in coherence.stampede_in_words(loads, 100)


def _change_table(changes: dict[str, float], noise: float = 2.0, requests: int = 40) -> pd.DataFrame:
    table = pd.DataFrame({"requests": requests, "change_ms": changes, "noise_ms": noise})
    return table.sort_values("change_ms", ascending=False)


def test_the_bottleneck_is_shown_when_only_the_policy_routes_slowed():
    table = _change_table({"GET /api/policies/{id}": 21.0, "POST /api/claims": 27.0,
                           "GET /api/customers/{id}/overview": 40.0, "GET /api/customers/{id}": 0.4})
    words = performance.bottleneck_verdict(table, delay_ms=20)
    assert "This run shows the bottleneck" in words and "NOT" not in words


def test_a_route_without_policy_data_that_slowed_is_reported_as_not_shown():
    table = _change_table({"GET /api/policies/{id}": 21.0, "POST /api/claims": 27.0,
                           "GET /api/customers/{id}/overview": 40.0, "GET /api/claims/{id}": 12.0})
    words = performance.bottleneck_verdict(table, delay_ms=20)
    assert "did NOT show it clearly" in words and "GET /api/claims/{id} slowed too" in words


def test_a_change_within_the_noise_is_not_called_a_slow_down():
    table = _change_table({"GET /api/policies/{id}": 21.0, "GET /api/customers/{id}/overview": 3.0}, noise=25.0)
    assert "did NOT show it clearly" in performance.bottleneck_verdict(table, delay_ms=20)


def _closed_run(concurrency: int, req_s: float, p50: float) -> LoadResult:
    records = pd.DataFrame({"status": [200] * 20, "latency_ms": [p50] * 20, "x_cache": ["HIT"] * 20})
    return LoadResult(records, {"concurrency": concurrency, "achieved_rate": req_s, "generator_cpu_pct": 10})


def test_a_sweep_whose_throughput_fell_says_so_and_calls_no_plateau():
    words = performance.sweep_verdict([_closed_run(1, 190, 4), _closed_run(4, 330, 5), _closed_run(16, 140, 100),
                                       _closed_run(64, 105, 500)])
    assert "Throughput FELL after c=4" in words and "Plateau" not in words


def test_an_xfetch_refresh_where_every_reader_loaded_is_said():
    per_refresh = {"none": [100, 100], "lock": [1, 1], "xfetch": [3, 100, 2, 1]}
    loads = pd.DataFrame([{"protection": name, "refresh": i} for name, counts in per_refresh.items()
                          for i, n in enumerate(counts) for _ in range(n)])
    words = coherence.stampede_in_words(loads, readers=100)
    assert "XFetch cut it to 26.5" in words and "in its worst refresh 100 readers loaded" in words


def _open_run(read_ms: float, logins: int = 0, login_ms: float = 100.0, halves: tuple = (), hit: str = "HIT"
              ) -> LoadResult:
    """What one side of ``performance.with_and_without_logins`` returns, written out."""
    rows = [{"route": "GET /api/policies/{id}", "status": 200, "latency_ms": read_ms + i % 3, "x_cache": hit}
            for i in range(150)]
    rows += [{"route": "POST /api/auth/login", "status": 200, "latency_ms": login_ms, "x_cache": ""}] * logins
    return LoadResult(pd.DataFrame(rows), {"percentiles_refused": False, "on_schedule": 1.0,
                                           "halves_p99_ms": list(halves), "load_average": [1.2, 1.6],
                                           "cores": 2})


def test_reads_whose_tail_grew_by_a_login_are_not_called_unblocked():
    words = performance.login_tail_verdict({"without logins": _open_run(5, halves=(6, 7)),
                                            "with logins": _open_run(100, logins=8, halves=(95, 102))})
    assert "grew by about a login" in words and "do not wait" not in words


def test_reads_whose_tail_barely_moved_with_logins_do_not_wait_behind_them():
    words = performance.login_tail_verdict({"without logins": _open_run(5, halves=(6, 7)),
                                            "with logins": _open_run(7, logins=8, halves=(7, 9))})
    assert "do not wait behind password hashing" in words and "NOT" not in words


def test_reads_faster_with_logins_is_reported_as_not_shown():
    """The run that printed p99 97 ms without logins and 10 ms with: backwards, and said so."""
    words = performance.login_tail_verdict({"without logins": _open_run(95, halves=(12, 97), hit="MISS"),
                                            "with logins": _open_run(8, logins=8, halves=(9, 10))})
    assert "did NOT show" in words and "FASTER with logins" in words
    assert "without logins 0%" in words and "with logins 100%" in words  # the hit rates that explain it


def test_noise_as_large_as_a_login_means_the_run_cannot_tell():
    words = performance.login_tail_verdict({"without logins": _open_run(40, halves=(10, 90)),
                                            "with logins": _open_run(60, logins=8, halves=(30, 70))})
    assert "canNOT tell" in words and "do not wait" not in words and "load average 1.2 to 1.6" in words


def test_a_request_in_flight_when_the_fault_hit_is_the_fault_s_doing():
    requests = pd.DataFrame({"t_s": [1.0, 1.99, 2.5], "kind": ["write"] * 3, "ok": [False, False, False],
                             "status": [503, 502, 503], "error": ["", "", ""], "latency_ms": [5.0, 40.0, 5.0]})
    words = resilience.outage_verdict(requests, pd.DataFrame(columns=["claim", "submitted_events"]),
                                      expect_ok=(), began_s=2.0)
    assert "1 of these failed BEFORE the fault began" in words


def test_a_sweep_whose_two_directions_disagree_says_the_shape_is_not_shown():
    runs = [_closed_run(c, rate, p50) for c, rate, p50 in ((1, 266, 2.6), (4, 303, 4.3), (16, 382, 17.5), (64, 382, 134))]
    for run, both in zip(runs, ((235, 297), (442, 164), (197, 567), (267, 497))):
        run.meta["rates_up_down"] = both
    words = performance.sweep_verdict(runs)
    assert "c=4: 442 / 164" in words and "NOT shown reliably" in words


def test_the_slow_instance_summary_counts_the_steady_state_only():
    slow, fast = "claims-41002-ab", "claims-41001-ab"
    rows = [{"strategy": "least_outstanding", "round": 0, "seq": i, "first_wave": i < 4, "round_s": 2.0,
             "served_by": slow if i in (1, 50) else fast, "latency_ms": 1000.0 if i in (1, 50) else 10.0}
            for i in range(200)]
    df = pd.DataFrame(rows)
    df.attrs = {"slow_instance": slow, "delay_ms": 1000.0, "load_average": [1.0], "cores": 2}
    summary = gateway.slow_instance_summary(df)
    row = summary.loc["least_outstanding"]
    assert row["requests"] == 196 and row["to_slow"] == 1  # the first wave's slow request is counted apart
    assert row["first_wave_to_slow"] == "1 of 4" and row["req_per_s"] == 100  # 200 requests in a 2 s round
    assert summary.attrs["delay_ms"] == 1000.0


def _login_round(read_ms_during: float, read_ms_else: float, load: float = 6.0) -> LoadResult:
    """One round with logins, the clock written out: a 100 ms login at every whole second, reads every 10 ms."""
    rows = [{"route": "POST /api/auth/login", "status": 200, "latency_ms": 100.0, "service_ms": 100.0,
             "start_s": float(t), "round": 0, "x_cache": ""} for t in range(6)]
    for i in range(600):
        start = i / 100
        during = start % 1 < 0.1
        ms = read_ms_during if during else read_ms_else
        rows.append({"route": "GET /api/policies/{id}", "status": 200, "latency_ms": ms + i % 3, "service_ms": ms,
                     "start_s": start, "round": 0, "x_cache": "HIT"})
    return LoadResult(pd.DataFrame(rows), {"percentiles_refused": False, "on_schedule": 1.0,
                                           "halves_p99_ms": [ms + 1, ms + 2], "load_average": [load],
                                           "cores": 2})


def test_reads_slow_only_while_a_login_runs_on_a_quiet_machine_waited_behind_it():
    words = performance.login_tail_verdict({"without logins": _open_run(5, halves=(6, 7)),
                                            "with logins": _login_round(read_ms_during=95, read_ms_else=5, load=1.1)})
    assert "Reads waited behind logins" in words and "canNOT" not in words


def test_reads_slow_only_while_a_login_runs_on_a_busy_machine_cannot_tell_cpu_from_waiting():
    words = performance.login_tail_verdict({"without logins": _open_run(5, halves=(6, 7)),
                                            "with logins": _login_round(read_ms_during=95, read_ms_else=5, load=15.0)})
    assert "canNOT tell" in words and "Reads waited behind logins" not in words


def test_reads_slow_alike_with_and_without_a_login_in_flight_did_not_wait_behind_it():
    words = performance.login_tail_verdict({"without logins": _open_run(5, halves=(6, 7)),
                                            "with logins": _login_round(read_ms_during=90, read_ms_else=90)})
    assert "did not wait behind a login" in words and "Reads waited" not in words


def test_a_last_step_that_only_climbs_back_to_an_earlier_peak_is_not_called_no_plateau():
    """Lesson 07's quiet run: 278, 720, 604, 723 req/s at c=1, 4, 16, 64."""
    words = performance.sweep_verdict([_closed_run(c, rate, p50) for c, rate, p50 in
                                       ((1, 278, 3.2), (4, 720, 4.5), (16, 604, 20.1), (64, 723, 78.0))])
    assert "No plateau yet" not in words and "the ceiling was reached by c=4" in words


def test_noisy_tails_are_settled_by_the_reads_beside_a_login_when_there_are_enough():
    """Lesson 07's final quiet run: p99 112 ms without logins, 49 ms with, halves 107 ms apart, a login 76 ms;
    inside the rounds with logins, the reads during a login no slower by half a login than the others."""
    without = _open_run(110, halves=(10, 117))
    words = performance.login_tail_verdict({"without logins": without,
                                            "with logins": _login_round(read_ms_during=30, read_ms_else=20)})
    assert "canNOT" not in words and "too noisy to compare" in words and "do not wait" in words


def test_a_higher_p50_for_least_outstanding_is_explained_with_the_served_rates():
    summary = _slow_summary({"round_robin": 2000.0, "least_outstanding": 60.0}, 0.003)
    summary.loc["least_outstanding", "p50_ms"] = 30.0
    words = gateway.slow_instance_in_words(summary)
    assert "p50 is the higher (30 ms against 13 ms)" in words and "least outstanding 130, round_robin 36" in words
