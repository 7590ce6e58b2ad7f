"""chat.lanes: one conversation's frames in order, conversations side by side."""

import asyncio

import pytest

from chat.lanes import Lanes

pytestmark = pytest.mark.asyncio


def _step(log: list, name: str, gate: asyncio.Event | None = None):
    async def work() -> None:
        log.append(f"{name} start")
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        log.append(f"{name} end")

    return work


async def test_one_key_runs_in_submission_order():
    lanes, log, gate = Lanes(), [], asyncio.Event()
    await lanes.submit("a", _step(log, "a1", gate))
    await lanes.submit("a", _step(log, "a2"))
    await asyncio.sleep(0.01)
    assert log == ["a1 start"]  # a2 waits for a1
    gate.set()
    await lanes.drain(1)
    assert log == ["a1 start", "a1 end", "a2 start", "a2 end"]


async def test_work_with_nothing_ahead_starts_before_submit_returns():
    """No turn of the loop in between: the frame's statement is on its way
    before the consumer reads its next frame."""
    lanes, log, gate = Lanes(), [], asyncio.Event()
    await lanes.submit("a", _step(log, "a1", gate))
    assert log == ["a1 start"]
    await lanes.submit("a", _step(log, "a2"))
    assert log == ["a1 start"]  # behind a1
    gate.set()
    await lanes.drain(1)
    assert log == ["a1 start", "a1 end", "a2 start", "a2 end"]


async def test_work_that_finishes_at_once_leaves_the_lane_clear():
    lanes, log = Lanes(), []

    async def instant() -> None:
        log.append("instant")

    await lanes.submit("a", instant)
    await lanes.submit("a", instant)
    assert log == ["instant", "instant"]
    await lanes.drain(1)
    assert lanes.busy == 0


async def test_other_keys_do_not_wait_for_a_stuck_one():
    lanes, log, gate = Lanes(), [], asyncio.Event()
    await lanes.submit("a", _step(log, "a1", gate))
    await lanes.submit("b", _step(log, "b1"))
    await asyncio.sleep(0.01)
    assert log == ["a1 start", "b1 start", "b1 end"]
    gate.set()
    await lanes.drain(1)
    assert log[-1] == "a1 end"
    assert lanes.busy == 0


async def test_a_failure_is_logged_and_the_lane_goes_on(caplog):
    lanes, log = Lanes(), []

    async def broken() -> None:
        raise RuntimeError("boom")

    await lanes.submit("a", broken)
    await lanes.submit("a", _step(log, "a2"))
    await lanes.drain(1)
    assert log == ["a2 start", "a2 end"]
    assert "frame work failed" in caplog.text
    assert "boom" in caplog.text


async def test_submit_waits_while_the_limit_is_in_flight():
    lanes, log, gate = Lanes(limit=2), [], asyncio.Event()
    await lanes.submit("a", _step(log, "a1", gate))
    await lanes.submit("b", _step(log, "b1", gate))
    third = asyncio.create_task(lanes.submit("c", _step(log, "c1")))
    await asyncio.sleep(0.01)
    assert not third.done()  # the consumer stops reading the socket here
    assert lanes.busy == 2
    gate.set()
    await asyncio.wait_for(third, 1)
    await lanes.drain(1)
    assert sorted(log) == sorted(
        ["a1 start", "a1 end", "b1 start", "b1 end", "c1 start", "c1 end"]
    )


async def test_drain_gives_up_after_its_timeout(caplog):
    lanes, gate = Lanes(), asyncio.Event()
    await lanes.submit("a", _step([], "a1", gate))
    await lanes.drain(0.05)
    assert lanes.busy == 1
    assert "still running" in caplog.text
    gate.set()
    await lanes.drain(1)
    assert lanes.busy == 0
