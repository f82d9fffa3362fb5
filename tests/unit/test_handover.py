"""A worker that handed sessions over claims none for a while (they are for the others), unless a worker goes away
meanwhile: the sessions it leaves run nowhere, and waiting out the pause would leave them so past its lease."""

from __future__ import annotations

import random
from pathlib import Path
from typing import cast

from tests.support.builders import make_settings
from wagate.domain.sessions import Status
from wagate.ids import SessionId
from wagate.supervisor.commands import Command
from wagate.supervisor.handover import Balancer
from wagate.supervisor.runner import SessionRunner
from wagate.supervisor.stats import SessionStats


class Running:
    """What the balancer reads of a runner: its session WORKING, and the commands it was given."""

    def __init__(self) -> None:
        self.handing_over = False
        self.commands: list[Command] = []

    def observed(self) -> tuple[Status, None, None]:
        return Status.WORKING, None, None

    def command(self, command: Command) -> None:
        self.commands.append(command)


def test_a_worker_gone_ends_the_pause_in_claiming_after_a_hand_over(tmp_path: Path) -> None:
    runners = {SessionId(f"ses_{n}"): Running() for n in range(8)}
    balancer = Balancer(
        make_settings(tmp_path),
        lambda: 1000.0,  # the clock stands still: the pause never ends by itself here
        random.Random(7),
        SessionStats(),
        "a#1",
        cast("dict[SessionId, SessionRunner]", runners),
    )
    balancer.total = 12
    balancer.see({"a#1": 8, "b#1": 4, "c#1": 0})  # c has just joined
    balancer.hand_over_excess()
    handed = [session_id for session_id, runner in runners.items() if runner.commands == [Command.HAND_OVER]]
    assert len(handed) == 4
    for session_id in handed:
        del runners[session_id]  # their runners end; c claims them

    balancer.total = 15  # three sessions more to run, and room for one more here: still paused
    balancer.see({"a#1": 4, "b#1": 4, "c#1": 4})
    assert balancer.claim_room() == 0
    balancer.see({"a#1": 4, "c#1": 4})  # b's leases lapsed: it is gone, and its sessions with it
    assert balancer.claim_room() == 4  # up to the share of the two left (8), at once
