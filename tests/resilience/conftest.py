"""A private lab for tests that fuzz or break things, so the session's shared lab stays untouched."""

from __future__ import annotations

import pytest

import labkit
from labkit import procs
from labkit.seed import seed
from services.core.settings import SERVICE_NAMES, Settings


def private_settings(run_dir) -> Settings:
    ports = {f"{name}_port": procs.free_port() for name in SERVICE_NAMES}
    return Settings(_env_file=None, run_dir=run_dir, redis_port=procs.free_port(), **ports)


@pytest.fixture(scope="package")
def private_lab(tmp_path_factory):
    settings = private_settings(tmp_path_factory.mktemp("private-lab"))
    lab = labkit.start_all(settings)
    seed(settings, customers=20, policies=40, claims=20)
    yield lab
    labkit.stop_all(settings)
