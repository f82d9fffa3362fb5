"""Engines by name, built from the settings when first needed.

An engine is built from its name and plain options (:func:`engine_options`, :func:`build_engine`): what it needs of
the settings, and nothing else of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wagate.engines.base import Engine
from wagate.errors import ConfigError

if TYPE_CHECKING:
    from wagate.config import Settings

# The engines this build knows. Each name is what a session records and what ``POST /api/sessions`` accepts.
ENGINE_NAMES: tuple[str, ...] = ("sim", "neonize")


def engine_names() -> tuple[str, ...]:
    return ENGINE_NAMES


def engine_options(name: str, settings: Settings, *, sim_url: str | None, sessions: int) -> dict[str, Any]:
    """What ``build_engine`` needs to build ``name`` for at most ``sessions`` sessions at once."""
    if name == "sim":
        if not sim_url:
            raise ConfigError("the sim engine needs a simulator: set WAGATE_SIM_URL or run `wagate serve --demo`")
        return {"url": sim_url}
    if name == "neonize":
        from wagate.engines.neonize.options import NeonizeOptions

        return NeonizeOptions.from_settings(settings, sessions=sessions).as_dict()
    raise ConfigError(f"unknown engine {name!r}")


def build_engine(name: str, options: dict[str, Any]) -> Engine:
    if name == "sim":
        from wagate.engines.sim.engine import SimEngine

        return SimEngine(str(options["url"]))
    if name == "neonize":
        from wagate.engines.neonize.options import NeonizeOptions

        try:
            from wagate.engines.neonize.engine import NeonizeEngine
        except ImportError as exc:  # the package, or its Go library, cannot load on this machine
            raise ConfigError(f"the neonize engine cannot load: {exc}") from None
        return NeonizeEngine(NeonizeOptions.from_dict(options))
    raise ConfigError(f"unknown engine {name!r}")


class EngineRegistry:
    """Builds each engine once; ``get`` raises ``ConfigError`` with what to set when one cannot be built."""

    def __init__(self, settings: Settings, *, sim_url: str | None = None) -> None:
        self._settings = settings
        self._sim_url = sim_url or settings.sim_url
        self._engines: dict[str, Engine] = {}

    def get(self, name: str) -> Engine:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._build(name)
            self._engines[name] = engine
        return engine

    def _build(self, name: str) -> Engine:
        settings = self._settings
        options = engine_options(name, settings, sim_url=self._sim_url, sessions=settings.max_sessions_total)
        return build_engine(name, options)

    def loaded(self) -> list[Engine]:
        """The engines built so far (those this process has run sessions on)."""
        return list(self._engines.values())

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()
