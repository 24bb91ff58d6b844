# Two commands do all the set-up on a fresh machine with Python 3.11, pip and npm:
#   make run    create .venv, install, fetch MNIST, start Redis + API + one worker on :8000
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install data clean

$(BIN)/mnist-service: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/mnist-service

data: install
	$(BIN)/mnist-service fetch-data

run: data
	$(BIN)/mnist-service run

test: data
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var models
