"""An asyncio psycopg pool for the one statement that must not wait its turn.

Django runs every consumer's `database_sync_to_async` call of a process on one
thread, so a chat message would queue behind accepts, connects and other chats'
messages (issue 7 measured that as the p99 at 200 conversations and the
collapse at 1000). The message path is a single statement, so it runs here, on
the event loop, through psycopg's async pool; everything else keeps the ORM.

Connection settings come from `DATABASES["default"]` (so a test database is
picked up too). Statements run in autocommit: each one is its own transaction
and is committed when it returns. Prepared statements are on (psycopg prepares
a query after its fifth use on a connection) unless `OPTIONS` sets
`prepare_threshold`, e.g. to `None` behind PgBouncer in transaction mode.

One pool per event loop: uvicorn has one loop per process; tests have one per
test and close theirs with `close_pools()`.

Writes that many sockets make at once go through `write()`: group commit that
forms only under load (see `GroupCommit`).
"""

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from refdesk.aio import start_now

logger = logging.getLogger(__name__)

# Keyed by loop: a pool's connections and lock belong to the loop that made them.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future] = (
    weakref.WeakKeyDictionary()
)


def available() -> bool:
    """True when the default database is PostgreSQL (not the embedded SQLite)."""
    return connections["default"].vendor == "postgresql"


def connection_kwargs() -> dict:
    """psycopg connect arguments for the default database, minus Django's sync
    cursor class and adapters."""
    wrapper = connections["default"]
    params = wrapper.get_connection_params()
    for sync_only in ("cursor_factory", "context"):
        params.pop(sync_only, None)
    params["prepare_threshold"] = wrapper.settings_dict["OPTIONS"].get(
        "prepare_threshold", 5
    )
    params["autocommit"] = True
    return params


async def pool() -> AsyncConnectionPool:
    """This loop's pool, opened on first use."""
    loop = asyncio.get_running_loop()
    opening = _pools.get(loop)
    if opening is None or _failed(opening):
        opening = loop.create_task(_open())
        _pools[loop] = opening
    return await asyncio.shield(opening)


def _failed(opening: asyncio.Future) -> bool:
    # A pool that could not open (database down) is tried again next time.
    return opening.done() and (opening.cancelled() or opening.exception() is not None)


async def _open() -> AsyncConnectionPool:
    new = AsyncConnectionPool(
        kwargs=connection_kwargs(),
        connection_class=AsyncConnection,
        min_size=1,
        max_size=settings.REFDESK_DB_ASYNC_POOL_MAX,
        timeout=10,
        name="refdesk-async",
        open=False,
    )
    await new.open(wait=True)
    return new


async def close_pools() -> None:
    """Close the running loop's pool (tests; a process's pool lives as long as it),
    after the writes still running."""
    loop = asyncio.get_running_loop()
    if (writing := _committers.pop(loop, None)) is not None:
        await writing.drain()
    opening = _pools.pop(loop, None)
    if opening is not None:
        await (await opening).close()


@dataclass(eq=False)
class _Write:
    order: Hashable
    sql: str
    params: Sequence[Any]
    result: asyncio.Future = field(repr=False)

    def settle(self, row: tuple | None = None, error: Exception | None = None):
        if self.result.done():  # its caller was cancelled and has gone
            return
        if error is None:
            self.result.set_result(row)
        else:
            self.result.set_exception(error)


class GroupCommit:
    """Single-statement writes of one event loop, committed in groups under load.

    Up to `writers` tasks drain one queue. A writer that comes free takes
    everything queued (at most `most`): one statement runs alone in
    autocommit, exactly as `conn.execute` would; several run pipelined in one
    transaction, so PostgreSQL makes one commit (one WAL flush, one wake-up)
    for all of them. No write ever waits to make a group bigger: a write that
    finds a writer free is sent at once, before its caller's task yields
    (`refdesk.aio.start_now`), and groups grow only while all writers are
    busy.

    - A group takes its row locks in `order` (the conversation id for chat
      messages), so two processes' groups cannot deadlock on the same rows;
      statements with equal `order` keep their queue order.
    - If any statement of a group fails, PostgreSQL rolls the whole group
      back, and each statement is then run again alone: each caller gets
      exactly the row or error it would have got without grouping (a retried
      message's unique violation is the common case). If the connection
      itself fails, every caller of the group gets that error.
    - A write whose caller was cancelled before it was taken is not run.
    """

    def __init__(self, writers: int, most: int = 50):
        self._queue: deque[_Write] = deque()
        self._free = writers
        self._starting = False  # a writer is on its way to take the queue
        self._most = most
        self._tasks: set[asyncio.Task] = set()
        self.groups = 0  # transactions of two or more statements
        self.grouped = 0  # statements committed in those
        self.alone = 0  # statements run alone (including after a failed group)
        self.failed_groups = 0

    async def fetchone(
        self, sql: str, params: Sequence[Any], *, order: Hashable
    ) -> tuple | None:
        write = _Write(order, sql, params, asyncio.get_running_loop().create_future())
        self._queue.append(write)
        self._start_writer()
        return await write.result

    async def drain(self) -> None:
        """Wait for the writers still running."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_writer(self) -> None:
        if self._free and not self._starting:
            self._free -= 1
            self._starting = True
            # Started now: the write is sent before its caller's task yields.
            task = start_now(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while self._queue:
                taken = [
                    write
                    for write in _take(self._queue, self._most)
                    if not write.result.done()
                ]
                self._starting = False  # the queue is empty again
                try:
                    if taken:
                        await self._run(taken)
                except Exception as error:  # the pool could not connect, say
                    for write in taken:
                        write.settle(error=error)
                except BaseException:
                    for write in taken:
                        write.result.cancel()
                    raise
        finally:
            self._starting = False
            self._free += 1
            if self._queue:  # left behind by a cancelled writer
                self._start_writer()

    async def _run(self, writes: list[_Write]) -> None:
        shared = await pool()
        if len(writes) == 1:
            async with shared.connection() as conn:
                await self._alone(conn, writes)
            return
        writes.sort(key=lambda write: write.order)  # stable: equal keys keep order
        conn = None
        try:
            async with shared.connection() as conn:
                # One Sync at the end: the server runs everything before it as
                # one implicit transaction, committed at the Sync, rolled back
                # whole if any statement fails.
                async with conn.pipeline():
                    cursors = [await conn.execute(w.sql, w.params) for w in writes]
                rows = [await cursor.fetchone() for cursor in cursors]
        except psycopg.Error as error:
            if conn is None or conn.broken:
                # No connection, or it died: the group may even have committed
                # (a lost reply to COMMIT). Writing again could store messages
                # twice, so every caller hears the error, as one would alone.
                raise
            self.failed_groups += 1
            logger.debug("a group of %d failed (%s); one by one", len(writes), error)
            async with shared.connection() as conn:
                await self._alone(conn, writes)
            return
        self.groups += 1
        self.grouped += len(writes)
        for write, row in zip(writes, rows, strict=True):
            write.settle(row)

    async def _alone(self, conn: AsyncConnection, writes: list[_Write]) -> None:
        for write in writes:
            try:
                cursor = await conn.execute(write.sql, write.params)
                row = await cursor.fetchone()
            except psycopg.Error as error:
                write.settle(error=error)
            else:
                write.settle(row)
            self.alone += 1


def _take(queue: deque, most: int) -> list:
    return [queue.popleft() for _ in range(min(len(queue), most))]


_committers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit] = (
    weakref.WeakKeyDictionary()
)


def committer() -> GroupCommit:
    """This loop's `GroupCommit`."""
    loop = asyncio.get_running_loop()
    found = _committers.get(loop)
    if found is None:
        found = _committers[loop] = GroupCommit(settings.REFDESK_DB_ASYNC_WRITERS)
    return found


async def fetchall(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run one statement on this loop's pool and return its rows: a read, or a
    write that needs its own transaction (committed when this returns)."""
    async with (await pool()).connection() as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def write(sql: str, params: Sequence[Any], *, order: Hashable) -> tuple | None:
    """Run one write statement, committed when this returns, and return its first
    row (or None). Raises the statement's own error. Under load it shares its
    commit with other writes of this process (`GroupCommit`); `order` is the
    key its row locks are taken by, the same for every write of one row."""
    return await committer().fetchone(sql, params, order=order)
