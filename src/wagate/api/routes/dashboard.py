"""The dashboard: its page (``/``), static files (``/static``) and what it needs to know (``/api/dashboard/config``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from wagate import __version__
from wagate.web import STATIC_DIR

__all__ = ["dashboard_config", "index", "router"]

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/api/dashboard/config", summary="What the dashboard shows: demo mode, version (no key needed)")
async def dashboard_config(request: Request) -> dict[str, object]:
    return {"demo": bool(request.app.state.demo), "version": __version__}
