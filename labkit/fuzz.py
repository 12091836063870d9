"""Bad input, generated: schemathesis turns a service's own OpenAPI schema into requests — valid ones and
deliberately invalid ones — and checks every answer: never a 5xx, always a status and body the schema
declares, invalid input refused with a 4xx. Used by ``tests/resilience`` and ``benchmarks/resilience.py``.

Hypothesis drives each operation directly so every operation gets a bounded, repeatable budget.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from services.core.settings import SERVICE_NAMES, Settings

from .auth import service_headers

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def operations(settings: Settings, service: str) -> list:
    """Every operation of a service's schema, except /admin (its knobs would slow the lab on purpose)."""
    schema = schemathesis.openapi.from_url(settings.url_of(service) + "/openapi.json")
    return [op for op in (result.ok() for result in schema.get_all_operations()) if not op.path.startswith("/admin")]


def _service_at(settings: Settings, base_url: str | None) -> str:
    """Which service an operation's schema came from (its identity must be signed for that service)."""
    for name in SERVICE_NAMES:
        if base_url and base_url.rstrip("/").startswith(settings.url_of(name)):
            return name
    raise ValueError(f"no lab service serves {base_url}")


def fuzz_operation(operation, mode: GenerationMode, lab_settings: Settings, examples: int) -> int:
    """Send up to ``examples`` generated requests; return how many. A finding raises (schemathesis' report)."""
    seen = []
    service = _service_at(lab_settings, operation.base_url)

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        seen.append(case)
        # Business rules the schema cannot express (a customer must exist, a birth date be plausible)
        # rightly refuse some schema-valid requests with 422, so "valid data must be accepted" is not checked.
        case.call_and_validate(headers=service_headers(lab_settings, service), timeout=10,
                               excluded_checks=[positive_data_acceptance])

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid (e.g. a list with only optional params)
        pass
    return len(seen)
