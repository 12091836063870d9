"""A private lab for tests that fuzz or break things, so the session's shared lab stays untouched."""

from __future__ import annotations

import pytest

import labkit
from labkit.experiments.resilience import start_private_lab
from labkit.seed import seed


@pytest.fixture(scope="package")
def private_lab(tmp_path_factory):
    # A failed start stops what it had started; 120 s: a crowded machine can take a minute per service.
    lab = start_private_lab(tmp_path_factory.mktemp("private-lab"), timeout=120)
    try:
        seed(lab.settings, customers=20, policies=40, claims=20)
        yield lab
    finally:  # whatever happened in seeding or in the tests
        labkit.stop_all(lab.settings)
