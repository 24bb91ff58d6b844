"""The Python client of the API (``Client``) and the ``mnist-service`` commands built on it."""

from service.client.sdk import Client, Conflict, Invalid, NotFound, ServiceError, Unauthorized

__all__ = ["Client", "Conflict", "Invalid", "NotFound", "ServiceError", "Unauthorized"]
