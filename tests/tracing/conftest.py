"""A private lab with tracing on (``tracing=True``, as ``labkit start-all --tracing`` gives): tracing is off
by default, so the session's shared lab has none. The fixtures keep the shared names (``settings``, ``api``
...), so the tests read as if they ran on the session's lab; ``new_policy`` and friends use this ``api``."""

from __future__ import annotations

import pytest

import labkit
from labkit.auth import gateway_client
from labkit.errors import PortBusyError
from labkit.experiments.resilience import private_settings


@pytest.fixture(scope="package")
def settings(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("traced-lab")
    for attempt in range(3):
        chosen = private_settings(run_dir).model_copy(update={"tracing": True})
        try:
            labkit.start_all(chosen, timeout=120)
            break
        except PortBusyError:  # taken between our pick and its bind: pick again (start_all cleaned up)
            if attempt == 2:
                raise
    try:
        yield chosen
    finally:
        labkit.stop_all(chosen)


@pytest.fixture(scope="package")
def api(settings):
    with gateway_client(settings) as client:
        yield client
