"""The public shapes of the HTTP API, shared by the API and its client: one module per resource."""
