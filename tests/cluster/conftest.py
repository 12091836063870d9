"""The lab on a Redis Cluster (lesson 09): one private cluster-mode lab for this package, started once.

The fixtures have the same names as ``tests/conftest.py``'s, so a test written for the one-server lab runs
here unchanged against the cluster (``test_on_cluster.py`` imports a selection of them). About a minute:
6 nodes, the services, a small seed, then the tests.
"""

from __future__ import annotations

import httpx
import pytest

import labkit
from labkit.auth import gateway_client, service_client
from labkit.experiments import cluster as lesson
from labkit.seed import seed
from services.core.settings import SERVICE_NAMES


def start_cluster_lab(run_dir):
    """A seeded cluster-mode lab on fresh ports (lesson 09's own start); the caller stops it
    (``labkit.stop_all(settings)``)."""
    chosen = lesson.start_cluster_lab(run_dir).settings
    try:
        seed(chosen, customers=20, policies=40, claims=20)
    except BaseException:
        labkit.stop_all(chosen)
        raise
    return chosen


@pytest.fixture(scope="package")
def settings(tmp_path_factory):
    chosen = start_cluster_lab(tmp_path_factory.mktemp("cluster-lab"))
    try:
        yield chosen
    finally:
        labkit.stop_all(chosen)


@pytest.fixture(scope="package")
def lab(settings):
    return labkit.status(settings)


@pytest.fixture(scope="package")
def redis_url(lab):
    return lab.redis.url


@pytest.fixture
def r(lab):
    """An admin client of the whole cluster: each command goes to the node that owns its key's slot."""
    client = lab.redis.client()
    yield client
    client.close()


@pytest.fixture(scope="package")
def api(settings):
    with gateway_client(settings) as client:
        yield client


@pytest.fixture
def anonymous(settings):
    with httpx.Client(base_url=settings.url_of("gateway"), timeout=10) as client:
        yield client


@pytest.fixture(scope="package")
def direct(settings):
    clients = {name: service_client(settings, name) for name in SERVICE_NAMES}
    yield clients
    for client in clients.values():
        client.close()
