"""Tasks that start at once.

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
from collections.abc import Coroutine
from typing import Any


def start_now[T](coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run `coro` as a task on the running loop, starting now."""
    return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
