"""`labkit lab` opens JupyterLab rooted at the project, on notebook 00; `labkit stop` / `stop-all` stop it.

Run against the test session's lab (``labkit lab`` reuses it): JupyterLab on a free port with a known token;
the test stops it with ``labkit stop jupyter`` — the same pidfile ``stop-all`` (``make stop``) walks.
"""

import os
import subprocess
import sys
import time

import httpx

from labkit import procs
from services.core.settings import PROJECT_ROOT, get_settings

from waiting import wait_for


def test_labkit_lab_roots_jupyterlab_at_the_project_and_stop_stops_it(tmp_path):
    port, token = procs.free_port(), "lab-test-token"
    log = tmp_path / "jupyter.log"
    labkit = [sys.executable, "-m", "labkit"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*labkit, "lab", "--no-browser", f"--ServerApp.port={port}",
                                 f"--IdentityProvider.token={token}"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, env=dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt")))
    try:
        base = f"http://127.0.0.1:{port}"

        def answers():
            try:
                return httpx.get(f"{base}/api/contents?token={token}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(lambda: answers() or proc.poll() is not None, "JupyterLab to answer", deadline_s=300)
        assert proc.poll() is None, f"labkit lab exited: {log.read_text()[-3000:]}"
        root = {item["name"] for item in httpx.get(f"{base}/api/contents?token={token}").json()["content"]}
        assert {"notebooks", "exercises", "README.md"} <= root, root
        text = log.read_text()
        assert "/lab/tree/notebooks/00_start_here.ipynb" in text, text[-2000:]
        record = procs.read_pidfiles(get_settings().run_dir).get("jupyter")
        assert record is not None and record.pid == proc.pid, "labkit lab records JupyterLab's pid for stop-all"
        subprocess.run([*labkit, "stop", "jupyter"], check=True, cwd=PROJECT_ROOT, timeout=60)
        proc.wait(timeout=30)
        assert "jupyter" not in procs.read_pidfiles(get_settings().run_dir)
        assert not answers()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            time.sleep(0.1)
