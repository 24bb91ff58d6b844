"""Bad input from many clients at once: schemathesis's cases for every operation, valid and invalid, sent by
several threads together, never get a 5xx, and /healthz keeps answering meanwhile.

The cases are drawn first, in this thread (Hypothesis draws in one thread at a time), then sent concurrently; the
API is in this process, on a real socket, with one model of its own and no worker.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.fuzzing import READINESS_PROBES, register_pictures
from tests.helpers import add_model

CLIENTS = 8
EXAMPLES_PER_OPERATION_AND_MODE = 6
REQUEST_TIMEOUT_S = 30


def drawn_cases(url: str) -> list:
    """Valid and invalid cases for every operation of the API's schema, drawn repeatably."""
    register_pictures()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    cases = []
    for operation in (result.ok() for result in schema.get_all_operations()):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                phases=[Phase.generate],
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def draw(case):
                cases.append(case)

            try:
                draw()
            except Unsatisfiable:  # nothing to get wrong: an operation without parameters or body has no invalid case
                assert mode is GenerationMode.NEGATIVE
    return cases


def test_many_clients_at_once_get_no_server_error(serve_api, tmp_path):
    add_model(tmp_path / "models")
    server = serve_api()
    cases = drawn_cases(server.url)
    sent, done = [], threading.Event()

    def send(case) -> tuple:
        # An event stream of a job that never ends stays open: schemathesis reads a few of its events, then stops.
        return case, case.call(base_url=server.url, timeout=REQUEST_TIMEOUT_S).status_code

    health = []

    def watch_health() -> None:
        with server.client() as client:
            while not done.is_set():
                health.append(client.get("/healthz").status_code)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            sent = list(pool.map(send, cases))
    finally:
        done.set()
        watcher.join()
    print(f"concurrent fuzz: {len(sent)} cases by {CLIENTS} clients; /healthz asked {len(health)} times meanwhile")
    server_errors = [
        f"{status}: {case.as_curl_command()}"
        for case, status in sent
        if status >= 500 and not (status == 503 and case.operation.path in READINESS_PROBES)
    ]
    assert len(sent) == len(cases) > 0
    assert not server_errors
    assert health and set(health) == {200}
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
