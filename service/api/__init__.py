"""The HTTP side: the FastAPI app (``app.create_app``), its routes (``routes/``, one module per resource) and
the middleware and dependencies they share."""
