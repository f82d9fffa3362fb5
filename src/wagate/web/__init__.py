"""The dashboard: static files served by the gateway at ``/`` (no build step)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
