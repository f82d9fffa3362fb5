"""What the HTTP app needs of the process that serves it: the node (``wagate.runtime.node.Node``) as the API sees it.

The API sits below the runtime, so it names what it uses here instead of importing the node: the gateway, the
supervisor when this process runs sessions, the simulator in demo mode, the metrics registry, and what the routes
tell the rest of the process (an endpoint changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry

from wagate.gateway import Gateway
from wagate.ids import WebhookId
from wagate.supervisor.supervisor import Supervisor

if TYPE_CHECKING:
    from wagate.engines.sim.server import SimServer

__all__ = ["ServedNode"]


class ServedNode(Protocol):
    """The running parts behind an app; the app's lifespan starts and stops them."""

    @property
    def gateway(self) -> Gateway: ...

    @property
    def supervisor(self) -> Supervisor | None:
        """None when this process serves the API without running sessions."""

    @property
    def sim(self) -> SimServer | None:
        """The simulator inside the process (demo mode), mounted at ``/sim``."""

    @property
    def registry(self) -> CollectorRegistry: ...

    @property
    def process(self) -> str:
        """This process among those on the database: its supervisor's lease owner, when it runs sessions."""

    @property
    def started(self) -> float:
        """When the node was made (epoch seconds): the process's uptime."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def endpoint_changed(self, webhook_id: WebhookId) -> None:
        """A webhook endpoint changed through this process: the deliveries here and elsewhere read it again."""
