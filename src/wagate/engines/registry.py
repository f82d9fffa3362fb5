"""Engines by name, built from the settings when first needed."""

from __future__ import annotations

from wagate.config import Settings
from wagate.engines.base import Engine
from wagate.errors import ConfigError

# The engines this build knows. Each name is what a session records and what ``POST /api/sessions`` accepts.
ENGINE_NAMES: tuple[str, ...] = ("sim", "neonize")


def engine_names() -> tuple[str, ...]:
    return ENGINE_NAMES


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
        if name == "sim":
            if not self._sim_url:
                raise ConfigError("the sim engine needs a simulator: set WAGATE_SIM_URL or run `wagate serve --demo`")
            from wagate.engines.sim.engine import SimEngine

            return SimEngine(self._sim_url)
        if name == "neonize":
            try:
                from wagate.engines.neonize.engine import NeonizeEngine
            except ImportError as exc:  # the package, or its Go library, cannot load on this machine
                raise ConfigError(f"the neonize engine cannot load: {exc}") from None
            return NeonizeEngine(self._settings)
        raise ConfigError(f"unknown engine {name!r}")

    def loaded(self) -> list[Engine]:
        """The engines built so far (those this process has run sessions on)."""
        return list(self._engines.values())

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()
