"""The contract is exact: schemathesis, with every check it has (what `st run --checks all` runs), finds nothing
wrong with the API in any of its phases (the schema's examples, boundary values, random cases, and sequences
that follow the API's links): no 5xx, every answer as the schema declares it, everything the schema admits
accepted and everything it refuses refused, the key enforced where it is declared. Once without an API key and
once with one (every phase but boundary values).

Driven through schemathesis's engine (its pytest plugin does not load under pytest 9), against the API in this
process over real HTTP. Bounded and repeatable: a fixed number of examples per operation and a fixed seed. The API
under test has no worker (fuzzed jobs pile up harmlessly in its own queue) and a model store of its own holding one
model, so that /predict and /models are exercised past their 409s.
"""

import re
from collections import Counter

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.openapi.checks import RejectedPositiveData

from tests.fuzzing import READINESS_PROBES, register_pictures
from tests.helpers import add_model

EXAMPLES_PER_OPERATION = 10
API_KEY = "fuzzing-key-0123456789"
# The size limits that `TrainingConfig._check_size` enforces are products of several fields, which JSON Schema
# cannot state; a schema-valid configuration refused for one of them (and for nothing else) is documented.
SIZE_LIMITS = {"too_many_batches", "too_many_parameters", "too_many_activations"}


def contract_config(api_key: str | None) -> SchemathesisConfig:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 1,
            "generation": {"max-examples": EXAMPLES_PER_OPERATION, "database": "none"},
            "headers": {"X-API-Key": api_key} if api_key else {},
            # With a key, every phase but boundary values: those are the run without a key's (a key changes no
            # field's bounds, and they are most of the cases: 1,147 of 1,417 when this run had them too).
            "phases": {"coverage": {"enabled": not api_key}},
            "operations": [
                *(
                    {
                        "include-path": path,
                        "checks": {"not_a_server_error": {"expected-statuses": ["2XX", "3XX", "4XX", "503"]}},
                    }
                    for path in READINESS_PROBES
                ),
                # The stream of a job that never ends (there is no worker) never ends either: its first event
                # shows its shape, without waiting for 20 events or the request's timeout.
                {"include-path": "/jobs/{job_id}/events", "max-stream-events": 1},
            ],
        }
    )
    config.projects.override.checks.update(included_check_names=["all"])
    return config


def run_schemathesis(url: str, api_key: str | None) -> tuple[Counter, list[str]]:
    """Every phase of schemathesis with every check against the API at `url`: the cases tried in each phase, and
    each distinct failure (operation, check, what was wrong, and a curl command that reproduces it)."""
    register_pictures()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=contract_config(api_key))

    @schema.hook
    def filter_failure(context, failure, case, response) -> bool:
        # Only a valid case refused can be excused, and only for these two reasons.
        excused = _refusal_the_schema_cannot_state(case, response) or _not_valid_after_all(case)
        return not (isinstance(failure, RejectedPositiveData) and excused)

    cases, failures = Counter(), {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases[event.phase.value] += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        interaction = event.recorder.interactions.get(case_id)
                        answer = interaction and interaction.response
                        failures.setdefault(
                            (failure.operation, check.name, failure.title),
                            f"{failure.operation}: {check.name} ({event.phase.value}): {failure.title}\n"
                            f"{failure.message}\n"
                            f"{check.failure_info.code_sample}\n"
                            + (f"→ {answer.status_code} {answer.content[:500]!r}" if answer else ""),
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            error = event.value if isinstance(event, events.NonFatalError) else event.exception
            failures[("error", str(event.id))] = f"schemathesis error: {error!r}"
    return cases, list(failures.values())


def _refusal_the_schema_cannot_state(case, response) -> bool:
    """A documented 4xx for what JSON Schema cannot say: a configuration over a size limit (a product of fields),
    or bytes that are base64 or a file as declared but not a picture (415), or a picture without a digit (422)."""
    if case.operation.label == "POST /jobs" and response.status_code == 422:
        problems = response.json()["detail"]
        return isinstance(problems, list) and {problem["type"] for problem in problems} <= SIZE_LIMITS
    if case.operation.label == "POST /predict":
        return response.status_code == 415 or "no digit found" in response.text
    return False


def _not_valid_after_all(case) -> bool:
    """A "valid" case that is not: schemathesis 4.32's coverage phase sends an optional header that has a pattern
    as "0", whatever the pattern, and expects it accepted."""
    headers = case.headers or {}
    return any(
        parameter.name in headers and not re.search(parameter.definition["schema"]["pattern"], headers[parameter.name])
        for parameter in case.operation.headers
        if "pattern" in parameter.definition["schema"]
    )


@pytest.mark.parametrize("api_key", [None, API_KEY], ids=["no key", "with a key"])
def test_schemathesis_finds_nothing_with_every_check(serve_api, tmp_path, api_key):
    add_model(tmp_path / "models")
    server = serve_api(api_key=api_key)
    cases, failures = run_schemathesis(server.url, api_key)
    print(f"schemathesis cases ({'with' if api_key else 'without'} a key): {sum(cases.values())} {dict(cases)}")
    phases = {"examples", "fuzzing", "stateful"} | ({"coverage"} if api_key is None else set())
    assert {phase for phase, count in cases.items() if count} == phases, cases
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("api_key", [None, API_KEY], ids=["no key", "with a key"])
def test_the_schema_declares_the_key_exactly_when_one_is_configured(serve_api, api_key):
    with serve_api(api_key=api_key).client() as client:
        schema = client.get("/openapi.json").json()
    protected = schema["paths"]["/jobs"]["post"]
    if api_key:
        assert set(schema["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
        assert protected["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    else:
        assert "securitySchemes" not in schema["components"]
        assert "security" not in protected
    assert "security" not in schema["paths"]["/healthz"]["get"]
