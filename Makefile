# Two commands do all the set-up on a fresh machine with Python 3.11, pip and npm:
#   make run    create .venv, install, fetch MNIST, start Redis + API + one worker on :8000
#   make test   the same set-up and the browser tests' (Debian's chromium, npm ci), then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test bench install data browser clean

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

test: data browser
	$(BIN)/python -m pytest

bench: data
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var models
