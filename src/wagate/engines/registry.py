"""Engines by name, built from the settings when first needed: in the gateway's process, or in engine hosts.

``WAGATE_HOSTED_ENGINES`` names the engines whose sessions run in engine host processes (neonize by default: it
brings Go code, whose panic or crash would otherwise end every session of the gateway). An engine is built from its
name and plain options (:func:`engine_options`, :func:`build_engine`) in either place: an engine host builds its
engine the same way, from the options the gateway sends it, without the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wagate.config import ENGINE_NAMES
from wagate.engines.base import Engine
from wagate.errors import ConfigError

if TYPE_CHECKING:
    from wagate.config import Settings
    from wagate.engines.host.engine import HostedEngine
    from wagate.engines.host.pool import HostPool

__all__ = ["EngineRegistry", "build_engine", "engine_names", "engine_options"]


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
        self.hosted = settings.hosted_engine_names  # names checked by the settings

    def get(self, name: str) -> Engine:
        engine = self._engines.get(name)
        if engine is None:
            engine = self._build(name)
            self._engines[name] = engine
        return engine

    def _build(self, name: str) -> Engine:
        settings = self._settings
        if name not in self.hosted:
            options = engine_options(name, settings, sim_url=self._sim_url, sessions=settings.max_sessions_total)
            return build_engine(name, options)
        options = engine_options(name, settings, sim_url=self._sim_url, sessions=settings.host_sessions)
        return self._hosted(name, options)

    def _hosted(self, name: str, options: dict[str, Any]) -> HostedEngine:
        from wagate.engines.host.engine import HostedEngine
        from wagate.engines.host.pool import HostPolicy, HostPool
        from wagate.engines.host.process import HostSpec

        settings = self._settings
        spec = HostSpec(name, options, log_level=settings.log_level, log_format=settings.log_format.value)
        policy = HostPolicy(
            sessions=settings.host_sessions,
            recycle_starts=settings.host_recycle_starts,
            recycle_rss_kib=settings.host_recycle_rss * 1024,
            recycle_age=settings.host_recycle_age,
            drain_after=settings.host_drain_after,
            start_timeout=settings.connect_timeout,
        )
        if name == "neonize":
            from wagate.engines.neonize.options import NeonizeOptions
            from wagate.engines.neonize.snapshot import WhatsmeowDirectory

            files = WhatsmeowDirectory(NeonizeOptions.from_dict(options).directory)
            # NeonizeEngine's namespace is the contract's default (none); its module is not imported here: it
            # loads the Go library, which the gateway's process never needs when neonize runs in hosts.
            return HostedEngine(name, HostPool(spec, policy), connect_namespace=None, files=files)
        from wagate.engines.sim.engine import SimEngine

        return HostedEngine(name, HostPool(spec, policy), connect_namespace=SimEngine.connect_namespace)

    def loaded(self) -> list[Engine]:
        """The engines built so far (those this process has run sessions on)."""
        return list(self._engines.values())

    def pools(self) -> dict[str, HostPool]:
        """The pools of engine hosts built so far, by engine."""
        if not self.hosted:
            return {}  # nothing runs in hosts: their modules need not even be loaded
        from wagate.engines.host.engine import HostedEngine

        return {name: e.pool for name, e in self._engines.items() if isinstance(e, HostedEngine)}

    def hosts(self) -> list[dict[str, Any]]:
        """The engine hosts of this process, each with its sessions (for the server's status)."""
        return [host for pool in self.pools().values() for host in pool.describe()]

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()
