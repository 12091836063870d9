"""Bad input, generated (``labkit.fuzz``): schemathesis derives valid and deliberately invalid requests from
every domain service's own OpenAPI schema. It runs against the private lab: it creates and deletes
entities at random."""

from __future__ import annotations

import pytest

from labkit.fuzz import MODES, fuzz_operation, operations

EXAMPLES_PER_OPERATION = 25


@pytest.mark.parametrize("service", ["customer", "policy", "claims"])
@pytest.mark.parametrize("mode", MODES, ids=["valid", "invalid"])
def test_service_answers_every_generated_request_within_its_schema(private_lab, service, mode):
    ops = operations(private_lab.settings, service)
    assert ops
    cases = sum(fuzz_operation(op, mode, private_lab.settings, EXAMPLES_PER_OPERATION) for op in ops)
    assert cases >= len(ops)
