"""A private lab for tests that fuzz or break things, so the session's shared lab stays untouched."""

from __future__ import annotations

import pytest

import labkit
from labkit.experiments.resilience import start_private_lab
from labkit.seed import seed


@pytest.fixture(scope="package")
def private_lab(tmp_path_factory):
    lab = start_private_lab(tmp_path_factory.mktemp("private-lab"))  # a failed start stops what it started
    try:
        seed(lab.settings, customers=20, policies=40, claims=20)
        yield lab
    finally:  # whatever happened in seeding or in the tests
        labkit.stop_all(lab.settings)
