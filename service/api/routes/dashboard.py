"""The dashboard: one page at `/`, its scripts and styles under `/dashboard/`, shipped inside the package."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

FILES = Path(__file__).resolve().parent.parent / "dashboard"
static_files = StaticFiles(directory=FILES)


@router.get("/")
def dashboard() -> FileResponse:
    return FileResponse(FILES / "index.html")
