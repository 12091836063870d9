"""The live dashboard over HTTP: the page, the Server-Sent Events stream, and the system user's actions.

The session's lab (root conftest.py) starts the dashboard with everything else. The stream is read the
way a browser's EventSource reads it: ``event:`` and ``data:`` lines over one long GET.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

import labkit
from labkit import procs

ACTIONS = [("kill", {"instance": "claims#2"}), ("restart", {"instance": "claims#2"}),
           ("scale", {"service": "claims", "n": 2}), ("slow", {"service": "claims", "delay_ms": 100}),
           ("freeze-redis", {"seconds": 1})]


@pytest.fixture(scope="module")
def dashboard(settings):
    with httpx.Client(base_url=settings.url_of("dashboard"), timeout=30) as client:
        yield client


def snapshots(settings, deadline_s: float = 20.0):
    """Yield each ``snapshot`` the stream pushes, until ``deadline_s`` has passed."""
    deadline = time.monotonic() + deadline_s
    with httpx.stream("GET", settings.url_of("dashboard") + "/events", timeout=httpx.Timeout(10, read=10)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[len("event:"):].strip()
            elif line.startswith("data:") and kind == "snapshot":
                yield json.loads(line[len("data:"):])
            if time.monotonic() > deadline:
                return


def snapshot_where(settings, condition, what: str, deadline_s: float = 20.0) -> dict:
    for snapshot in snapshots(settings, deadline_s):
        if condition(snapshot):
            return snapshot
    pytest.fail(f"no snapshot within {deadline_s:.0f} s showed {what}")


def instance_named(snapshot: dict, name: str) -> dict | None:
    service = next(s for s in snapshot["services"] if s["name"] == name.split("#")[0])
    return next((i for i in service["instances"] if i["name"] == name), None)


def dashboard_log(settings) -> str:
    return (settings.run_dir / "logs" / "dashboard.log").read_text(errors="replace")


def test_the_page_and_its_script_are_served_by_the_lab_itself(dashboard):
    page = dashboard.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/dashboard.js"' in page.text and "http" not in page.text.split("<body>")[0].replace(
        'href="data:,"', ""), "no CDN: every asset comes from the lab, by a relative address"
    script = dashboard.get("/static/dashboard.js")
    assert script.status_code == 200 and 'new EventSource("events")' in script.text


def test_the_stream_shows_every_service_healthy_with_its_registration(settings):
    # Waited for, not taken from the first snapshot: a test before this one may have killed or scaled an
    # instance, and the registry and the gateway's probes take a few seconds to forget it.
    names = ("gateway", "customer", "policy", "claims", "worker")
    snapshot = snapshot_where(settings, lambda snap: all(s["health"] == "healthy" for s in snap["services"]
                                                         if s["name"] in names), "every service healthy")
    by_name = {s["name"]: s for s in snapshot["services"]}
    for name in ("gateway", "customer", "policy", "claims", "worker"):
        assert by_name[name]["health"] == "healthy", by_name[name]
        first = instance_named(snapshot, name)
        assert first is not None and first["process"] == "alive"
        assert 0 < first["ttl_s"] <= settings.registry_ttl_s, "the registry's remaining TTL per instance"
    for name in ("customer", "policy", "claims"):
        assert by_name[name]["strategy"] == settings.gateway_balancer
    assert {s["topic"] for s in snapshot["events"]["streams"]} == {"customers", "policies", "claims"}
    assert snapshot["redis"]["ok"] and snapshot["redis"]["server"] in ("valkey", "redis")
    assert set(snapshot["caches"]["services"]) == {"customer", "policy", "claims"}


def test_a_read_through_the_gateway_shows_in_the_next_snapshots(settings, api):
    for snapshot in snapshots(settings):
        api.get("/api/policies/POL-000001", headers={"Cache-Control": "no-cache"}).raise_for_status()
        if snapshot["caches"]["services"]["policy"]["reads_1m"] > 0:
            assert snapshot["caches"]["services"]["policy"]["hit_rate_1m"] is not None
            return
    pytest.fail("the policy service's reads never showed in the hit-rate line")


def test_a_published_event_arrives_on_the_stream_as_it_happens(settings, new_customer):
    with httpx.stream("GET", settings.url_of("dashboard") + "/events", timeout=httpx.Timeout(10, read=10)) as response:
        customer, kind, snapshots_seen = None, None, 0
        deadline = time.monotonic() + 20
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[len("event:"):].strip()
            elif line.startswith("data:") and kind == "snapshot":
                snapshots_seen += 1
                if snapshots_seen == 2:  # a tick after the page opened: the dashboard listens by now
                    customer = new_customer()
            elif line.startswith("data:") and kind == "lab-event" and customer is not None:
                event = json.loads(line[len("data:"):])
                if event["subject"] == customer["id"] and event["type"] == "customer.created":
                    assert event["time"] and event["source"].startswith("customer")
                    return
            assert time.monotonic() < deadline, "the customer.created event never reached the stream"


@pytest.mark.parametrize("action,body", ACTIONS)
def test_every_action_answers_401_without_the_key_and_with_a_wrong_one(dashboard, settings, action, body):
    for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": settings.api_key()},
                    {"Authorization": b"Bearer \xc3\xa9" + settings.api_key().encode()[2:]}):
        answer = dashboard.post(f"/actions/{action}", json=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"]["code"] == "unauthenticated"
    assert dashboard.get("/actions/whoami").status_code == 401


def test_a_refused_action_is_logged_with_where_it_came_from(dashboard, settings):
    dashboard.post("/actions/kill", json={"instance": "claims"})
    assert "action refused: POST /actions/kill from 127.0.0.1" in dashboard_log(settings)
    assert labkit.status(settings).healthy, "a refused kill kills nothing"


def test_the_gateway_answers_401_not_500_to_a_non_ascii_api_key(settings):
    """An attacker's header with non-ASCII bytes: a str compare_digest raised TypeError (500) before."""
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        answer = client.get("/api/policies/POL-000001", headers={"Authorization": b"Bearer \xc3\xa9\xff"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthenticated"


def test_bad_action_input_is_a_422_in_the_labs_error_format(dashboard, settings):
    key = {"Authorization": f"Bearer {settings.api_key()}"}
    for action, body in (("scale", {"service": "claims", "n": 99}), ("kill", {"instance": "../etc"}),
                         ("slow", {"service": "claims"}), ("freeze-redis", {"seconds": 3600})):
        answer = dashboard.post(f"/actions/{action}", json=body, headers=key)
        assert answer.status_code == 422, (action, answer.text)
        assert answer.json()["error"]["field"]


def test_with_the_key_kill_and_restart_act_on_the_instance_and_are_logged(dashboard, settings):
    key = {"Authorization": f"Bearer {settings.api_key()}"}
    assert dashboard.get("/actions/whoami", headers=key).json()["who"].startswith("system user")
    scaled = dashboard.post("/actions/scale", json={"service": "claims", "n": 2}, headers=key)
    assert scaled.status_code == 200, scaled.text
    try:
        pid = procs.read_pidfiles(settings.run_dir)["claims#2"].pid
        killed = dashboard.post("/actions/kill", json={"instance": "claims#2"}, headers=key)
        assert killed.status_code == 200 and killed.json()["pid"] == pid
        assert not procs.is_alive(pid)
        down = snapshot_where(settings, lambda s: (instance_named(s, "claims#2") or {}).get("health") == "down",
                              "claims#2 down")
        assert instance_named(down, "claims")["health"] == "healthy", "only the killed instance is down"
        restarted = dashboard.post("/actions/restart", json={"instance": "claims#2"}, headers=key)
        assert restarted.status_code == 200, restarted.text
        snapshot_where(settings, lambda s: (instance_named(s, "claims#2") or {}).get("health") == "healthy",
                       "claims#2 healthy again")
        log = dashboard_log(settings)
        assert "action scale claims to 2 by system user (API key) from 127.0.0.1: done" in log
        assert "action kill claims#2 by system user (API key) from 127.0.0.1: done" in log
        assert "action restart claims#2 by system user (API key) from 127.0.0.1: done" in log
    finally:
        labkit.scale("claims", 1, settings)


def test_slow_with_the_key_turns_the_services_knobs_and_back(dashboard, settings, direct):
    key = {"Authorization": f"Bearer {settings.api_key()}"}
    answer = dashboard.post("/actions/slow", json={"service": "customer", "delay_ms": 5}, headers=key)
    try:
        assert answer.status_code == 200, answer.text
        assert direct["customer"].get("/admin/knobs").json()["delay_ms"] == 5
    finally:
        dashboard.post("/actions/slow", json={"service": "customer", "delay_ms": answer.json()["before"]["delay_ms"]},
                       headers=key)
    assert "action slow customer {'delay_ms': 5.0} by system user" in dashboard_log(settings)


def test_a_failed_login_is_counted_by_the_gateway_and_shown(settings, anonymous):
    before = anonymous.get("/services").json()["refused"]["logins_failed"]
    anonymous.post("/api/auth/login", json={"username": "nobody-here", "password": "wrong"})
    snapshot_where(settings, lambda s: (s["access"]["logins_failed"] or 0) > before, "the failed login counted")


def test_lab_dashboard_is_an_iframe_on_the_page_or_through_jupyters_proxy(settings):
    lab = labkit.status(settings)
    assert lab.dashboard(proxied=False).src == settings.url_of("dashboard") + "/"
    assert lab.dashboard(proxied=True).src == f"/proxy/{settings.dashboard_port}/"
    with_key = lab.dashboard(proxied=False, actions=True).src
    assert with_key.endswith("#key=" + settings.api_key()), "the key only in the fragment, never in the query"


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory):
    """A Jupyter server with jupyter-server-proxy, as a learner's (maybe remote) JupyterLab runs it."""
    import subprocess
    import sys

    port, token = procs.free_port(), "dashboard-test-token"
    server = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
                               f"--IdentityProvider.token={token}", "--allow-root",
                               f"--ServerApp.root_dir={tmp_path_factory.mktemp('jupyter')}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/status", headers={"Authorization": f"token {token}"}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "the Jupyter server exited"
            time.sleep(0.2)
        yield base, {"Authorization": f"token {token}"}
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_the_page_and_its_live_stream_reach_through_jupyters_own_url(settings, jupyter_server):
    """A learner on a remote or hosted Jupyter opens /proxy/<port>/: the page, and the stream as it streams."""
    base, auth = jupyter_server
    proxied = f"{base}/proxy/{settings.dashboard_port}"
    page = httpx.get(proxied + "/", headers=auth, timeout=30)
    assert page.status_code == 200 and 'src="static/dashboard.js"' in page.text
    headers = {**auth, "Accept": "text/event-stream"}  # what a browser's EventSource sends
    with httpx.stream("GET", proxied + "/events", headers=headers, timeout=httpx.Timeout(20, read=20)) as stream:
        assert stream.status_code == 200
        seen = []
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[len("data:"):]))
            if len(seen) == 2:  # two snapshots a second apart, while the response is still open: it streams
                break
    assert {s["name"] for s in seen[-1]["services"]} >= {"gateway", "customer", "policy", "claims"}
