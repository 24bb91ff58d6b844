"""The dashboard in a real headless Chromium (Debian's), driven by playwright-core from node, against the API
(served in the test process) and a worker process: the page's own scenario is tests/browser/dashboard.test.mjs.
`make test` installs both first."""

import os
import subprocess
from pathlib import Path

import pytest

from service.launcher.embedded_redis import EmbeddedRedis
from tests.helpers import ROOT, free_port, wait_for_workers

BROWSER_TESTS = ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def fresh_service(serve_api, spawn_worker, tmp_path):
    """The API and a worker on a Redis and a model store of their own: the page starts with no job and no model,
    and shows only what the test does."""
    with EmbeddedRedis(tmp_path / "redis", port=free_port()) as redis_url:
        api = serve_api(redis_url=redis_url)
        worker = spawn_worker(api.settings)
        wait_for_workers(api.settings, [worker])  # warm: the page's jobs start at once
        yield api, worker
        worker.terminate()  # told before its Redis stops


@pytest.mark.timeout(540)
def test_the_dashboard_trains_draws_and_classifies_in_a_real_browser(fresh_service):
    api, worker = fresh_service
    missing = [str(p) for p in (CHROMIUM, BROWSER_TESTS / "node_modules" / "playwright-core") if not p.exists()]
    assert not missing, f"missing {', '.join(missing)}: run `make browser` (apt chromium + npm ci)"
    run = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "dashboard.test.mjs"],
        cwd=BROWSER_TESTS,
        env={**os.environ, "DASHBOARD_URL": api.url, "ARTIFACTS": str(ARTIFACTS)},
        capture_output=True,
        text=True,
        timeout=520,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{worker.output()}"
    print(run.stdout)  # each step and its time, and how many scripted digits the pad read right (pytest -s)
    # The screenshots stay in test-artifacts/ (docs/dashboard.png, in the README, is one of them, copied by hand).
