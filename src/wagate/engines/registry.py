"""Engines by name."""

from __future__ import annotations

# The engines this build knows. Each name is what a session records and what ``POST /api/sessions`` accepts.
ENGINE_NAMES: tuple[str, ...] = ("sim", "neonize")


def engine_names() -> tuple[str, ...]:
    return ENGINE_NAMES
