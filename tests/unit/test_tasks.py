"""TaskSet: the one way wagate starts a task nothing awaits; none is lost, a failure is logged, stop waits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wagate.tasks import TaskSet


async def test_a_task_is_held_until_it_ends_and_its_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet()
    gate = asyncio.Event()

    async def fails() -> None:
        await gate.wait()
        raise RuntimeError("boom")

    async def ends() -> None:
        await gate.wait()

    tasks.spawn(fails(), "failing-job")
    tasks.spawn(ends(), "quiet-job")
    assert len(tasks) == 2
    assert sorted(t.get_name() for t in tasks) == ["failing-job", "quiet-job"]
    gate.set()
    assert await tasks.wait(5.0) == set()
    await asyncio.sleep(0)  # the done callbacks run
    assert len(tasks) == 0
    failed = [r for r in caplog.records if r.name == "wagate.tasks" and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failed] == ["failing-job failed: RuntimeError('boom')"]


async def test_wait_returns_what_is_late_and_cancel_ends_it(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet()
    slow = tasks.spawn(asyncio.sleep(60), "slow")
    assert await tasks.wait(0.01) == {slow}
    await tasks.cancel()
    assert slow.cancelled()
    assert len(tasks) == 0
    assert not [r for r in caplog.records if r.name == "wagate.tasks"]  # a cancelled task is no failure
