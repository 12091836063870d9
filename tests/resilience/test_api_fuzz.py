"""Bad input, generated: schemathesis derives requests from every domain service's own OpenAPI schema —
valid ones and deliberately invalid ones — and checks each answer: never a 5xx, always a status and body
the schema declares, and invalid input refused with a 4xx. It runs against a private lab (it creates and
deletes entities at random), driven by hypothesis directly so each operation gets a bounded budget."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from labkit.auth import service_headers

EXAMPLES_PER_OPERATION = 25


def fuzz_operation(operation, mode: GenerationMode, lab) -> int:
    seen = []

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        seen.append(case)
        # Business rules the schema cannot express (a customer must exist, a birth date be plausible)
        # rightly refuse some schema-valid requests with 422, so "valid data must be accepted" is not checked.
        case.call_and_validate(headers=service_headers(lab.settings), timeout=10,
                               excluded_checks=[positive_data_acceptance])

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid (e.g. a list with only optional params)
        pass
    return len(seen)


@pytest.mark.parametrize("service", ["customer", "policy", "claims"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_service_answers_every_generated_request_within_its_schema(private_lab, service, mode):
    schema = schemathesis.openapi.from_url(private_lab.settings.url_of(service) + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if not op.path.startswith("/admin")]  # knobs would slow the lab on purpose
    assert operations
    cases = sum(fuzz_operation(op, mode, private_lab) for op in operations)
    assert cases >= len(operations)
