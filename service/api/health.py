"""Liveness: the process answers. It checks no dependency, so a Redis outage never restarts the API."""

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
