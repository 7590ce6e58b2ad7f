"""Tasks that start at once, and sockets that read their sources in tasks of
their own (`dispatch_each`, at the end).

`asyncio.create_task` schedules a task's first step for the loop's next pass,
after every callback already queued and every socket that became readable
meanwhile. On a busy socket process a pass takes milliseconds, and a message
used to take that turn three times before its statement and its publish were
even sent: its conversation's lane, the group-commit writer, the layer's
publisher (issue 7).

`start_now` runs the task's coroutine at once instead, up to its first real
wait (a socket read, a lock), as `asyncio.eager_task_factory` would for every
task of the loop; here only for refdesk's own tasks, whose code is written for
it. The one rule for callers: the task may already be done when `start_now`
returns, having run to the end without waiting for anything.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any


def start_now[T](coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run `coro` as a task on the running loop, starting now."""
    return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)


async def dispatch_each[T](
    sources: Sequence[Callable[[], Awaitable[T]]],
    dispatch: Callable[[T], Awaitable[object]],
) -> None:
    """Channels' `await_many_dispatch`, with one reader task per source for the
    life of the socket instead of a new task per event.

    Channels' loop starts a fresh task for a source after each of its events
    and waits on all of them with `asyncio.wait`, which builds a waiter, a
    closure and a done callback per task each time: some twenty objects the
    garbage collector tracks, per event, that live until the socket's next
    event. With a thousand sockets in a process they piled up in the young
    generation (up to 25,000 objects where its threshold is 2,000, because
    the count it triggers on is allocations *less* frees), and each young
    collection walked all of them: 10-20 ms pauses of the loop (issue 7).

    Here each source has one long-lived reader that awaits the source and hands
    each event to `dispatch`. A lock keeps Channels' guarantees: one event is
    dispatched at a time, a source is read again only after its last event was
    dispatched, and each source's events keep their order. When a reader ends
    (`dispatch` or a source raised, `StopConsumer` included) the others are
    cancelled and its exception is raised here, as Channels' loop raises it.
    """
    lock = asyncio.Lock()

    async def read(source: Callable[[], Awaitable[T]]) -> None:
        while True:
            event = await source()
            async with lock:
                await dispatch(event)

    loop = asyncio.get_running_loop()
    readers = [loop.create_task(read(source)) for source in sources]
    try:
        await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
        for reader in readers:
            if reader.done():
                reader.result()
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
