"""Deliver one conversation's messages to one socket in `seq` order.

Messages are stored in `seq` order, but each is published after commit by
whichever web process stored it, so two sent close together from two processes
(a patron on one, the librarian on another) can arrive swapped. A frame whose
predecessor has not arrived yet is held back; if the gap is still open after
`gap_wait` seconds, the missing messages are read from the database (delivery
over the channel layer is at most once, so a gap may never close by itself).

Under load gaps come often, and most close by themselves a little later. The
reads that fill them therefore take turns through one gate per process
(`gap_reads`), and a buffer whose gap closed while it waited for its turn reads
nothing: left free to run side by side, they took the message path's pooled
connections in bursts, slowed every message and so opened more gaps.
"""

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable

Frame = dict
Send = Callable[[Frame], Awaitable[None]]
Fetch = Callable[[int], Awaitable[list[Frame]]]


# One gate per event loop: uvicorn runs one loop per process, tests one per test.
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def gap_reads() -> asyncio.Semaphore:
    """This process's gate for gap-filling reads: one at a time."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(1)
    return gate


class SeqOrder:
    def __init__(
        self,
        send: Send,
        fetch: Fetch,
        last_seq: int = 0,
        gap_wait: float = 0.05,
        gate: asyncio.Semaphore | None = None,
    ):
        self.send = send
        self.fetch = fetch
        self.last = last_seq
        self.gap_wait = gap_wait
        self.gate = gate
        self.held: dict[int, Frame] = {}
        self.filler: asyncio.Task | None = None
        self.closed = False

    def sent_up_to(self, seq: int) -> None:
        """Record frames sent outside this buffer (history, resume)."""
        self.last = max(self.last, seq)
        for held in [s for s in self.held if s <= self.last]:
            del self.held[held]

    async def push(self, frame: Frame) -> None:
        seq = frame["seq"]
        if self.closed or seq <= self.last:
            return  # closed, or already sent: history, a resume or a gap fill
        if seq != self.last + 1:
            self.held[seq] = frame
            if self.filler is None:
                self.filler = asyncio.ensure_future(self._fill_gap())
            return
        await self._emit(frame)

    async def _emit(self, frame: Frame) -> None:
        self.last = frame["seq"]
        await self.send(frame)
        while self.last + 1 in self.held:
            following = self.held.pop(self.last + 1)
            self.last = following["seq"]
            await self.send(following)
        if not self.held and self.filler is not None:
            self.filler.cancel()
            self.filler = None

    async def catch_up(self) -> None:
        """Send whatever the database holds after the last frame sent."""
        for frame in await self.fetch(self.last):
            if self.closed:  # closed while the database was read
                return
            if frame["seq"] > self.last:
                self.held.pop(frame["seq"], None)
                self.last = frame["seq"]
                await self.send(frame)
        self.sent_up_to(self.last)
        while self.last + 1 in self.held:  # published after the read above
            following = self.held.pop(self.last + 1)
            self.last = following["seq"]
            await self.send(following)

    async def _fill_gap(self) -> None:
        await asyncio.sleep(self.gap_wait)
        # Waiting for the gate, the filler can still be cancelled by the gap closing.
        async with self.gate or contextlib.nullcontext():
            self.filler = None  # a gap opening during the read gets its own filler
            if not self.held:
                return
            await self.catch_up()

    def close(self) -> None:
        """Send nothing more (the chat left this socket)."""
        self.closed = True
        self.held.clear()
        if self.filler is not None:
            self.filler.cancel()
            self.filler = None
