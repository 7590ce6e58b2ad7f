"""refdesk.aio: `start_now` (a task that runs at once, up to its first wait) and
`dispatch_each` (a socket's sources read by a task each)."""

import asyncio
import gc

import pytest
from channels.utils import await_many_dispatch

from refdesk.aio import dispatch_each, start_now

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


class Source:
    """A socket or layer stand-in: `await source()` returns its next event."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.queue = name, log, asyncio.Queue()
        self.reads = 0

    async def __call__(self):
        self.reads += 1
        event = await self.queue.get()
        if isinstance(event, BaseException):
            raise event
        return event


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_dispatch_each_dispatches_one_event_at_a_time_in_each_sources_order():
    log: list = []
    socket, layer = Source("socket", log), Source("layer", log)
    busy = []

    async def dispatch(event):
        busy.append(event)
        assert len(busy) == 1, f"{event} dispatched while {busy[0]} still was"
        # A source is not read again while its event is being dispatched.
        source = socket if event.startswith("s") else layer
        reads_before = source.reads
        await asyncio.sleep(0.001)
        assert source.reads == reads_before
        log.append(event)
        busy.remove(event)

    runner = asyncio.create_task(dispatch_each([socket, layer], dispatch))
    for i in range(20):
        socket.queue.put_nowait(f"s{i}")
        layer.queue.put_nowait(f"l{i}")
    while len(log) < 40:
        await asyncio.sleep(0.005)
    assert [e for e in log if e.startswith("s")] == [f"s{i}" for i in range(20)]
    assert [e for e in log if e.startswith("l")] == [f"l{i}" for i in range(20)]
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_an_exception_in_dispatch_ends_it_and_cancels_the_other_reader():
    log: list = []
    socket, layer = Source("socket", log), Source("layer", log)

    class Stop(Exception):
        pass

    async def dispatch(event):
        if event == "stop":
            raise Stop
        log.append(event)

    before = asyncio.all_tasks()
    runner = asyncio.create_task(dispatch_each([socket, layer], dispatch))
    socket.queue.put_nowait("hello")
    await _settle()
    socket.queue.put_nowait("stop")
    with pytest.raises(Stop):
        await runner
    assert log == ["hello"]
    # Both readers are gone: nothing is left waiting on the layer.
    await _settle()
    assert asyncio.all_tasks() == before


async def test_a_source_that_fails_ends_it_with_its_exception():
    socket, layer = Source("socket", []), Source("layer", [])

    async def dispatch(event):
        pass

    runner = asyncio.create_task(dispatch_each([socket, layer], dispatch))
    layer.queue.put_nowait(ConnectionError("layer gone"))
    with pytest.raises(ConnectionError, match="layer gone"):
        await runner


async def test_cancelling_it_cancels_a_dispatch_under_way_and_both_readers():
    socket, layer = Source("socket", []), Source("layer", [])
    started, cancelled = asyncio.Event(), []

    async def dispatch(event):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(event)
            raise

    before = asyncio.all_tasks()
    runner = asyncio.create_task(dispatch_each([socket, layer], dispatch))
    socket.queue.put_nowait("slow")
    await started.wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert cancelled == ["slow"]
    await _settle()
    assert asyncio.all_tasks() == before


async def _young_objects_per_waiting_socket(loop_function) -> float:
    """Young-generation objects each idle socket keeps after one event.

    200 sockets, each reading two sources with `loop_function`, take one event
    each and go back to waiting; the objects the collector tracks that were
    made meanwhile and are still alive are what every young collection walks
    until they are promoted."""
    sockets = [(Source("s", []), Source("l", [])) for _ in range(200)]
    dispatched = []

    async def dispatch(event):
        dispatched.append(event)

    runners = [
        asyncio.create_task(loop_function(list(pair), dispatch)) for pair in sockets
    ]
    await _settle()
    gc.disable()
    try:
        gc.collect()
        for socket, _ in sockets:
            socket.queue.put_nowait("frame")
        await _settle()
        assert len(dispatched) == len(sockets)
        young = len(gc.get_objects(0))
    finally:
        gc.enable()
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    return young / len(sockets)


async def test_a_waiting_socket_keeps_far_fewer_young_objects_than_with_channels_loop():
    ours = await _young_objects_per_waiting_socket(dispatch_each)
    channels = await _young_objects_per_waiting_socket(await_many_dispatch)
    assert ours < channels / 2, (ours, channels)
