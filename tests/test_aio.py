"""refdesk.aio.start_now: a task that runs at once, up to its first wait."""

import asyncio

import pytest

from refdesk.aio import start_now

pytestmark = pytest.mark.asyncio


async def test_the_task_runs_up_to_its_first_wait_before_start_now_returns():
    log, gate = [], asyncio.Event()

    async def work() -> str:
        log.append("started")
        await gate.wait()
        log.append("resumed")
        return "done"

    task = start_now(work())
    assert log == ["started"]
    assert not task.done()
    gate.set()
    assert await task == "done"
    assert log == ["started", "resumed"]


async def test_a_task_that_never_waits_is_done_on_return():
    async def instant() -> int:
        return 7

    task = start_now(instant())
    assert task.done()
    assert task.result() == 7


async def test_a_plain_task_would_not_have_started():
    """The difference start_now makes (the control for the tests above)."""
    log = []

    async def work() -> None:
        log.append("started")

    task = asyncio.create_task(work())
    assert log == []
    await task
    assert log == ["started"]
