"""`docker compose up`, for real: the user's docker-compose.yml with docker-compose.cpu.yml, plus
tests/docker/compose.test.yml, which only swaps in images made on this machine (tests/docker/setup.sh). Run by
`make test-docker`, which installs the engine, Compose and those images first.

One stack, under a compose project name of this run's own, goes through what a user does and what goes wrong,
in order (each test builds on the one before; `-x` stops at the first failure): build the image, once; fill
the data volume the way docs/deployment.md tells offline users; `up --wait`; train, read the metrics, predict,
scrape; scale to three workers; kill a worker mid-job; restart Redis; `down` and `up` again with an API key.
The last test takes it all down and checks that nothing of the project is left. Every wait has a deadline.
What was measured is printed above pytest's summary line and written to test-artifacts/docker-stack.json.
"""

import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.docker.figures import FIGURES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = Path(os.environ.get("MNIST_TEST_COMPOSE", ROOT / "var/docker-tools/compose/docker-compose"))
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.cpu.yml", "tests/docker/compose.test.yml"]
IMAGE = "mnist-service:test"  # what compose.test.yml names the image
BASE_IMAGE = "mnist-test-python:bookworm"
PROJECT_PREFIX = "mnist-test-"
PROJECT = f"{PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"  # a stale one's pid is gone (see below)
API_KEY = secrets.token_urlsafe(24)
APP_SERVICES = {"fetch-data", "api", "worker"}
DATA_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

pytestmark = pytest.mark.timeout(1500)  # per test; the first builds the image, cold on a fresh machine


def run(command: list, timeout: float, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(part) for part in command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        shown = " ".join(map(str, command))
        raise AssertionError(f"{shown} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def docker(*args, timeout: float = 60, check: bool = True) -> str:
    return run(["docker", *args], timeout=timeout, check=check).stdout.strip()


def ca_bundle() -> str:
    """The CA bundle that pip uses on this machine (pip config's `cert`), for pip inside the build."""
    if os.environ.get("MNIST_TEST_CA"):
        return os.environ["MNIST_TEST_CA"]
    configured = run(["python3", "-m", "pip", "config", "get", "global.cert"], timeout=60, check=False).stdout.strip()
    return configured if configured and Path(configured).is_file() else "/etc/ssl/certs/ca-certificates.crt"


class Stack:
    """`docker compose` on the three files, under this run's project name, with a clean environment: no
    MNIST_* or COMPOSE_* variable of the caller's leaks in. The API is published on an ephemeral port of
    127.0.0.1 (MNIST_PUBLISH=127.0.0.1: makes the mapping 127.0.0.1::8000)."""

    def __init__(self, project: str):
        self.project = project
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MNIST_", "COMPOSE_"))}
        self.env.update(MNIST_PUBLISH="127.0.0.1:", MNIST_TEST_CA=ca_bundle())

    def compose(self, *args, timeout: float = 300, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        files = [arg for name in COMPOSE_FILES for arg in ("-f", name)]
        return run(
            [COMPOSE, "--project-name", self.project, "--project-directory", ROOT, *files, *args],
            timeout=timeout,
            check=check,
            env={**self.env, **env},
        )

    def url(self) -> str:
        published = self.compose("port", "api", "8000", timeout=60).stdout.strip()
        assert published.startswith("127.0.0.1:"), published  # never on every interface by default
        return f"http://{published}"

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url(), timeout=30, headers=headers)

    def containers(self, service: str | None = None, every: bool = False) -> list[dict]:
        """`docker inspect` of the project's containers (running ones unless `every`), by creation time."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = docker("ps", "--quiet", "--no-trunc", *(["--all"] if every else []), *filters).split()
        return sorted(json.loads(docker("inspect", *ids)), key=lambda c: c["Created"]) if ids else []

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        return {
            kind: docker(*command, "--filter", label).split()
            for kind, command in {
                "containers": ["ps", "--all", "--quiet"],
                "networks": ["network", "ls", "--quiet"],
                "volumes": ["volume", "ls", "--quiet"],
            }.items()
        }


def remove_stale_projects() -> None:
    """Containers, networks and volumes of earlier runs of this test that were killed before tearing down:
    projects named mnist-test-<pid>-… whose process is gone (a run going on now is left alone)."""
    label = '{{.Label "com.docker.compose.project"}}'
    listings = {
        "container": docker("ps", "--all", "--format", f"{{{{.ID}}}} {label}"),
        "network": docker("network", "ls", "--format", f"{{{{.ID}}}} {label}"),
        "volume": docker("volume", "ls", "--format", f"{{{{.Name}}}} {label}"),
    }
    for kind, listing in listings.items():
        for line in listing.splitlines():
            name, _, project = line.partition(" ")
            found = re.fullmatch(rf"{PROJECT_PREFIX}(\d+)-[0-9a-f]+", project)
            if found and not Path(f"/proc/{found[1]}").exists():
                docker(kind, "rm", *(["--force"] if kind != "network" else []), name, check=False)


def wait_until(condition, timeout: float, what: str, every: float = 0.5):
    """Poll `condition` until it returns something truthy; fail, saying `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, subprocess.SubprocessError, AssertionError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def wait_for_jobs(client: httpx.Client, ids: list[str], timeout: float) -> list[dict]:
    def ended():
        jobs = [client.get(f"/jobs/{job_id}").raise_for_status().json() for job_id in ids]
        return jobs if all(job["ended"] for job in jobs) else None

    return wait_until(ended, timeout, f"jobs {ids} ended", every=1)


def submit(client: httpx.Client, config: dict) -> str:
    response = client.post("/jobs", json=config)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def all_points(client: httpx.Client, job_id: str, limit: int = 1000) -> list[dict]:
    points, cursor = [], None
    while True:
        page = client.get(f"/jobs/{job_id}/metrics", params={"limit": limit, **({"since": cursor} if cursor else {})})
        page = page.raise_for_status().json()
        if not page["points"]:
            return points
        points += page["points"]
        cursor = page["cursor"]


def assert_healthy(stack: Stack, timeout: float = 120) -> dict[str, str]:
    """Every running container whose image has a health check is `healthy`; the one-shot fetch-data has exited 0."""

    def states():
        found = {}
        for container in stack.containers(every=True):
            name, state = container["Name"].lstrip("/"), container["State"]
            service = container["Config"]["Labels"]["com.docker.compose.service"]
            if service == "fetch-data":
                assert state["Status"] == "exited" and state["ExitCode"] == 0, (name, state)
                found[name] = "exited 0"
            else:
                found[name] = state.get("Health", {}).get("Status", "no health check")
        return found if all(status in ("healthy", "exited 0") for status in found.values()) else None

    return wait_until(states, timeout, "every container healthy", every=2)


def digit_png(index: int) -> tuple[bytes, int]:
    """MNIST test digit `index` as a PNG file (black ink on white, as a person would draw it) and its label."""
    images = (ROOT / "data/t10k-images-idx3-ubyte").read_bytes()
    labels = (ROOT / "data/t10k-labels-idx1-ubyte").read_bytes()
    pixels = np.frombuffer(images, np.uint8, 784, 16 + 784 * index).reshape(28, 28)
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).resize((112, 112)).save(buffer, format="PNG")
    return buffer.getvalue(), labels[8 + index]


@pytest.fixture(scope="module")
def stack(request):
    assert COMPOSE.is_file(), f"no Compose binary at {COMPOSE}: run `make test-docker` (tests/docker/setup.sh)"
    remove_stale_projects()
    (ROOT / "test-artifacts/docker-stack-logs.txt").unlink(missing_ok=True)  # an earlier failure's
    stack = Stack(PROJECT)
    yield stack
    # Whatever happened: the logs when something failed, then everything of the project goes.
    if request.session.testsfailed:
        logs = stack.compose("logs", "--no-color", "--timestamps", timeout=120, check=False)
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "docker-stack-logs.txt").write_text(logs.stdout + logs.stderr)
    stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=300, check=False)


@pytest.fixture(scope="module", autouse=True)
def figures_file():
    yield
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "docker-stack.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


state: dict = {}  # what one test leaves the next: the first job and its points, the models


def test_the_image_is_built_once_for_every_service_lean_and_without_root_or_build_tools(stack):
    config = json.loads(stack.compose("config", "--format", "json", timeout=60).stdout)["services"]
    assert [name for name, service in config.items() if "build" in service] == ["fetch-data"]
    assert {config[name]["image"] for name in APP_SERVICES} == {IMAGE}

    before = docker("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False) or None
    started = time.monotonic()
    built = stack.compose("--progress", "plain", "build", timeout=1500)
    FIGURES["build_s"] = round(time.monotonic() - started, 1)
    FIGURES["build_kind"] = "warm (earlier image and build cache on this machine)" if before else "cold"
    output = built.stdout + built.stderr
    assert set(re.findall(r"\[([\w-]+) internal\] load build definition", output)) == {"fetch-data"}, output[-3000:]

    image = json.loads(docker("image", "inspect", IMAGE))[0]
    if before and before != image["Id"]:
        docker("image", "rm", before, check=False)  # the previous build's image, now untagged: not left dangling
    base = json.loads(docker("image", "inspect", BASE_IMAGE))[0]
    FIGURES["image_size_mb"] = round(image["Size"] / 1e6)
    FIGURES["image_size_over_its_base_mb"] = round((image["Size"] - base["Size"]) / 1e6)
    FIGURES["base_image_size_mb"] = round(base["Size"] / 1e6)
    assert image["Size"] <= 1.2e9, FIGURES

    assert image["Config"]["User"] == "10001:10001"
    env = dict(variable.split("=", 1) for variable in image["Config"]["Env"])
    assert not [name for name in env if name.startswith("PIP_")], env
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE)
    for trace in ("mnist-test-wheels", "secrets", "ca-certificates.crt", "/wheels"):
        assert trace not in history, trace  # the test's torch source and CA never reach the image
    probe = (
        "id -u; for tool in gcc cc c++ make ld as; do command -v $tool; done;"
        "ls /wheels /run/secrets /src /opt/venv/bin/pip* 2>/dev/null;"
        "python -c 'import pip' 2>/dev/null && echo pip; true"
    )
    assert docker("run", "--rm", "--entrypoint", "sh", IMAGE, "-c", probe, timeout=120).split() == ["10001"]


def test_up_with_the_data_filled_as_the_docs_say_turns_every_container_healthy(stack):
    # docs/deployment.md, "Without internet": create the containers and volumes, copy the four files in, up.
    stack.compose("create", timeout=300)
    with tempfile.TemporaryDirectory() as files:
        for name in DATA_FILES:
            shutil.copyfile(ROOT / "data" / name, Path(files) / name)
            os.chmod(Path(files) / name, 0o644)
        stack.compose("cp", f"{files}/.", "fetch-data:/data", timeout=120)

    started = time.monotonic()
    up = stack.compose("--progress", "plain", "up", "--build", "--wait", "--wait-timeout", "300", timeout=600)
    with stack.client() as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, 120, "/readyz 200")
    FIGURES["up_to_ready_s"] = round(time.monotonic() - started, 1)
    output = up.stdout + up.stderr
    assert set(re.findall(r"\[([\w-]+) internal\] load build definition", output)) <= {"fetch-data"}, output[-3000:]
    FIGURES["containers"] = assert_healthy(stack)
    (redis,) = stack.containers("redis")
    assert not redis["HostConfig"]["PortBindings"]  # Redis is published nowhere
    (api,) = stack.containers("api")
    assert [b["HostIp"] for b in api["HostConfig"]["PortBindings"]["8000/tcp"]] == ["127.0.0.1"]  # the API: localhost


def test_a_job_trains_past_085_and_its_metrics_come_through_the_cursor_once(stack):
    with stack.client() as client:
        started = time.monotonic()
        job_id = submit(client, {})
        points, cursor = [], None
        deadline = time.monotonic() + 600
        while True:  # read while it trains, each page after the last one's cursor
            params = {"limit": 7, **({"since": cursor} if cursor else {})}
            page = client.get(f"/jobs/{job_id}/metrics", params=params).raise_for_status().json()
            points += page["points"]
            cursor = page["cursor"] or cursor
            if page["status"] in ("succeeded", "failed", "canceled") and not page["points"]:
                break
            assert time.monotonic() < deadline, f"job {job_id} did not end in 600 s"
            time.sleep(0.2)
        job = client.get(f"/jobs/{job_id}").json()
    FIGURES["first_job_s"] = round(time.monotonic() - started, 1)
    FIGURES["first_job_test_accuracy"] = job["test_accuracy"]
    assert job["status"] == "succeeded", job
    assert job["test_accuracy"] >= 0.85, job
    assert [(p["attempt"], p["batch"]) for p in points] == [(1, batch) for batch in range(1, 101)]
    state["first_job"], state["first_points"] = job_id, points


def test_predict_reads_a_png_and_metrics_scrape(stack):
    png, label = digit_png(0)
    with stack.client() as client:
        answer = client.post("/predict", files={"file": ("digit.png", png, "image/png")})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["digit"] == label, answer.json()

        scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    values = dict(re.findall(r"^(mnist_\w+(?:\{[^}]*\})?) (\S+)$", scrape.text, re.MULTILINE))
    assert float(values['mnist_jobs{status="succeeded"}']) >= 1, values
    assert float(values["mnist_workers"]) == 1 and float(values["mnist_redis_up"]) == 1, values
    model_id = answer.json()["model_id"]
    assert float(values[f'mnist_predictions_total{{model_id="{model_id}"}}']) >= 1, values


def test_three_workers_share_six_jobs(stack):
    started = time.monotonic()
    stack.compose("up", "--detach", "--wait", "--wait-timeout", "300", "--scale", "worker=3", timeout=600)
    FIGURES["scale_to_3_workers_s"] = round(time.monotonic() - started, 1)
    workers = stack.containers("worker")
    assert len(workers) == 3
    assert_healthy(stack)
    with stack.client() as client:
        wait_until(lambda: "mnist_workers 3.0" in client.get("/metrics").text, 120, "3 workers on the queue")
        started = time.monotonic()
        ids = [submit(client, {"train_batches": 50, "seed": seed}) for seed in range(6)]
        jobs = wait_for_jobs(client, ids, timeout=900)
    FIGURES["six_jobs_on_3_workers_s"] = round(time.monotonic() - started, 1)
    assert [job["status"] for job in jobs] == ["succeeded"] * 6, jobs
    hosts = {job["worker"].split(".")[0] for job in jobs}  # RQ names a worker <hostname>.<pid>
    FIGURES["six_jobs_workers_used"] = len(hosts)
    assert len(hosts) >= 2, [job["worker"] for job in jobs]
    assert hosts <= {container["Config"]["Hostname"] for container in workers}


def test_a_killed_workers_job_ends_failed_with_a_readable_error_within_60_s(stack):
    with stack.client() as client:
        job_id = submit(client, {"train_batches": 50_000})  # many minutes on CPU: it is running when the kill comes

        def training():
            job = client.get(f"/jobs/{job_id}").json()
            return job if job["status"] == "running" and (job["progress"] or {}).get("batch", 0) >= 1 else None

        job = wait_until(training, 300, "the long job training")
        host = job["worker"].split(".")[0]
        (container,) = [c for c in stack.containers("worker") if c["Config"]["Hostname"] == host]
        docker("kill", container["Id"])
        killed = time.monotonic()
        job = wait_for_jobs(client, [job_id], timeout=90)[0]
        FIGURES["killed_worker_job_failed_after_s"] = round(time.monotonic() - killed, 1)
        FIGURES["killed_worker_job_error"] = job["error"]
    assert job["status"] == "failed", job
    assert FIGURES["killed_worker_job_failed_after_s"] <= 60
    assert isinstance(job["error"], str) and "worker" in job["error"] and len(job["error"]) < 500, job["error"]


def test_jobs_metrics_and_models_survive_a_redis_restart(stack):
    with stack.client() as client:
        jobs_before = {job["id"]: job["status"] for job in client.get("/jobs", params={"limit": 200}).json()["jobs"]}
        models_before = [model["id"] for model in client.get("/models").json()["models"]]
        stack.compose("restart", "redis", timeout=180)
        restarted = time.monotonic()
        wait_until(lambda: client.get("/readyz").status_code == 200, 120, "/readyz 200 after the Redis restart")
        FIGURES["redis_restart_to_ready_s"] = round(time.monotonic() - restarted, 1)

        jobs_after = {job["id"]: job["status"] for job in client.get("/jobs", params={"limit": 200}).json()["jobs"]}
        assert jobs_after == jobs_before
        assert all_points(client, state["first_job"]) == state["first_points"]
        assert [model["id"] for model in client.get("/models").json()["models"]] == models_before
        # and the workers carry on with the restarted Redis
        (job,) = wait_for_jobs(client, [submit(client, {"train_batches": 20})], timeout=300)
        assert job["status"] == "succeeded", job
        state["models"] = [model["id"] for model in client.get("/models").json()["models"]]
    FIGURES["survived_redis_restart"] = (
        f"{len(jobs_after)} jobs with their statuses, the first job's {len(state['first_points'])} metric points, "
        f"{len(models_before)} models"
    )


def test_down_and_up_again_keeps_the_models_and_an_api_key_is_required_through_the_container(stack):
    stack.compose("down", "--timeout", "30", timeout=300)
    assert not stack.containers(every=True)
    started = time.monotonic()
    stack.compose("up", "--wait", "--wait-timeout", "300", timeout=600, MNIST_API_KEY=API_KEY)
    with stack.client() as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, 120, "/readyz 200")
        FIGURES["up_again_to_ready_s"] = round(time.monotonic() - started, 1)
        refused = client.get("/models")
        assert refused.status_code == 401, refused.text
        assert client.get("/models", headers={"X-API-Key": "not-the-key-but-long-enough"}).status_code == 401
        models = client.get("/models", headers={"X-API-Key": API_KEY})
        assert models.status_code == 200, models.text
    assert [model["id"] for model in models.json()["models"]] == state["models"]
    assert_healthy(stack)


def test_down_leaves_nothing_of_the_project_behind(stack):
    stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=300)
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
