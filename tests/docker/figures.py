"""What the Docker stack's test measured, by name, in the order measured: printed by tests/docker/conftest.py
and written to test-artifacts/docker-stack.json."""

FIGURES: dict[str, object] = {}
