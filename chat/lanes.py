"""Work a socket's frames side by side, one lane per conversation.

Channels hands a consumer one message at a time: a frame waiting on the
database (an accept takes tens of milliseconds on a busy process) held every
other frame of the socket and every event delivered to it. A desk carries many
chats, so one librarian's accept delayed the messages of all their other chats
in both directions (issue 7 measured it in the delivery p99).

`Lanes` runs each submitted piece of work as a task, after the earlier work of
the same key (a conversation keeps its order: an accept before the reply
typed after it) and beside the work of other keys. At most `limit` pieces are
in flight per socket; past that `submit` waits, which stops the consumer
reading the socket, so a flood queues in the client's socket, not in memory.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

from refdesk.aio import start_now

logger = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]


class Lanes:
    def __init__(self, limit: int = 16):
        self._slots = asyncio.Semaphore(limit)
        self._tails: dict[Hashable, asyncio.Task] = {}
        self._running: set[asyncio.Task] = set()

    async def submit(self, key: Hashable, work: Work) -> None:
        """Start `work` once the earlier work of `key` has finished."""
        await self._slots.acquire()
        # Started now: a frame with nothing ahead of it in its lane reaches its
        # first wait (the statement sent) before the consumer reads on.
        task = start_now(self._after(self._tails.get(key), work))
        self._tails[key] = task
        self._running.add(task)
        task.add_done_callback(lambda done: self._finished(key, done))

    @staticmethod
    async def _after(previous: asyncio.Task | None, work: Work) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await work()

    def _finished(self, key: Hashable, task: asyncio.Task) -> None:
        self._running.discard(task)
        self._slots.release()
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("frame work failed", exc_info=error)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def drain(self, timeout: float) -> None:
        """Wait for the work in flight (a socket closing lets it finish first)."""
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=timeout)
            if late:
                logger.warning(
                    "%d frame(s) still running after %s s", len(late), timeout
                )
