"""Bad input, fuzzed: schemathesis drives every operation of the app's own OpenAPI schema against the real API.

Bounded and repeatable: a fixed number of examples per operation, derandomised. The API under test has no
worker (fuzzed jobs pile up harmlessly in its own queue) and a model store of its own holding one model, so
that /predict and /models are exercised past their 409s.
"""

from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.domain.model_store import ModelMetadata, new_model_id, save_model
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from tests.conftest import launch

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def fuzzed_service(redis_url, mnist_data_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    config = TrainingConfig(seed=0)
    created_at = datetime.now(UTC)
    save_model(
        work / "models",
        build_network(config),
        ModelMetadata(
            id=new_model_id(created_at),
            job_id=None,
            created_at=created_at,
            config=config,
            test_accuracy=0.1,
            test_loss=2.3,
            parameters=5994,
            train_seconds=0.0,
            device="cpu",
            versions={},
        ),
    )
    service = launch(work, redis_url, mnist_data_dir, workers=0, MNIST_QUEUE_NAME="fuzz")
    yield service
    service.stop()


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
