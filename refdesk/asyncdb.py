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
"""

import asyncio
import weakref

from django.conf import settings
from django.db import connections
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

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
    """Close the running loop's pool (tests; a process's pool lives as long as it)."""
    opening = _pools.pop(asyncio.get_running_loop(), None)
    if opening is not None:
        await (await opening).close()
