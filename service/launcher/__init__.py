"""The ``mnist-service`` command: fetch the data, start the API, a worker, or all of it with an embedded Redis."""
