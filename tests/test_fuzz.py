"""Bad input, fuzzed: schemathesis drives every operation of the app's own OpenAPI schema against the API over
real HTTP (served in the test process).

Bounded and repeatable: a fixed number of examples per operation, derandomised. The API under test has no
worker (fuzzed jobs pile up harmlessly in its own queue) and a model store of its own holding one model, so
that /predict and /models are exercised past their 409s.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.helpers import add_model

EXAMPLES_PER_OPERATION = 40


@pytest.fixture
def fuzzed_service(serve_api, tmp_path):
    add_model(tmp_path / "models")
    return serve_api(model_dir=tmp_path / "models")


def operations(url: str) -> list:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # /readyz's 503 is its answer here (no worker on purpose); its schema is checked in test_observability.
    return [op for op in (result.ok() for result in schema.get_all_operations()) if op.path != "/readyz"]


def test_no_server_error_and_every_answer_matches_the_schema(fuzzed_service):
    # Driven through Hypothesis directly (schemathesis's pytest plugin does not load under pytest 9).
    failures, tried = [], 0
    for operation in operations(fuzzed_service.url):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            nonlocal tried
            tried += 1
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as error:  # keep going: report every operation that fails
            failures.append(f"{operation.label}: {error}")
    print(f"fuzz cases tried: {tried}")
    assert not failures, "\n\n".join(failures)
