"""What the neonize engine is given: plain values, so that an engine host gets them without the settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wagate.config import Settings

__all__ = ["NeonizeOptions"]


@dataclass(frozen=True, slots=True)
class NeonizeOptions:
    directory: Path  # whatsmeow's files, one per session
    snapshot_interval: float
    threads: int  # for neonize's calls: each live session holds one
    probe: str  # host:port reached before each start; empty: no check
    probe_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings, *, sessions: int) -> NeonizeOptions:
        """The options for an engine that runs at most ``sessions`` sessions at once."""
        return cls(
            directory=Path(settings.neonize_dir or settings.data_dir / "neonize"),
            snapshot_interval=settings.neonize_snapshot_interval,
            threads=settings.neonize_threads or sessions + 32,
            probe=settings.neonize_probe,
            probe_timeout=settings.neonize_probe_timeout,
        )

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["directory"] = str(self.directory)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NeonizeOptions:
        return cls(
            directory=Path(str(values["directory"])),
            snapshot_interval=float(values["snapshot_interval"]),
            threads=int(values["threads"]),
            probe=str(values["probe"]),
            probe_timeout=float(values["probe_timeout"]),
        )
