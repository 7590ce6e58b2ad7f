"""Channel-layer group names and sending events after the transaction commits."""

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
from uuid import UUID

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def conversation_group(conversation_id: UUID | str) -> str:
    """Every socket following one conversation: the patron's, and the owning
    librarian's desks from the accept on. Messages go here once, for both sides;
    desks ignore the patron-only status and typing events."""
    return f"conversation.{conversation_id}"


def library_desks_group(library_id: int) -> str:
    """Every desk socket of one library's librarians: offers and withdrawals."""
    return f"desk.library.{library_id}"


def librarian_desks_group(librarian_id: int) -> str:
    """Every desk socket of one librarian: their chats' state (accepted, closed,
    the patron typing)."""
    return f"desk.librarian.{librarian_id}"


def session_desks_group(session_key: str) -> str:
    """Every desk socket of one login session, closed at logout."""
    return f"desk.session.{session_key}"


async def send(groups: Iterable[str], event: dict) -> None:
    """Publish `event` to `groups` from async code (after the commit)."""
    layer = get_channel_layer()
    for group in groups:
        try:
            await layer.group_send(group, event)
        except Exception:
            # Delivery is at most once by design: the message is stored and
            # clients resume by seq. A failed publish must not fail the caller.
            logger.exception("group_send to %s failed", group)


def send_now(groups: Iterable[str], event: dict) -> None:
    """Publish `event` to `groups` from sync code, in order with the caller's
    other publishes (each returns once published).

    Outside the ASGI server (the Celery worker, management commands)
    `async_to_sync` would build a new event loop per call, and the Redis layer a
    new connection for it: ~10 ms and a connection per publish. There, a
    process-wide publisher loop is used instead. The in-memory layer of the
    embedded default belongs to the server's loop, so it keeps `async_to_sync`.
    """
    groups = list(groups)
    if _has_server_loop() or isinstance(get_channel_layer(), InMemoryChannelLayer):
        async_to_sync(send)(groups, event)
        return
    published = asyncio.run_coroutine_threadsafe(send(groups, event), _publisher())
    try:
        published.result(timeout=PUBLISH_TIMEOUT_SECONDS)
    except TimeoutError:
        published.cancel()
        logger.error("publishing to %s took over %s s", groups, PUBLISH_TIMEOUT_SECONDS)


PUBLISH_TIMEOUT_SECONDS = 10
_publisher_lock = threading.Lock()
_publisher_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _has_server_loop() -> bool:
    """True on a `sync_to_async` thread of this process (a view, a consumer call)."""
    threadlocal = SyncToAsync.threadlocal
    return (
        getattr(threadlocal, "main_event_loop", None) is not None
        and getattr(threadlocal, "main_event_loop_pid", None) == os.getpid()
    )


def _publisher() -> asyncio.AbstractEventLoop:
    """This process's publisher loop, started on first use (and again after a fork)."""
    global _publisher_loop
    with _publisher_lock:
        if _publisher_loop is None or _publisher_loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="refdesk-publisher", daemon=True
            ).start()
            _publisher_loop = (os.getpid(), loop)
        return _publisher_loop[1]


def send_on_commit(groups: str | Iterable[str], event: dict) -> None:
    """Send `event` to `groups` once the surrounding transaction commits."""
    targets = [groups] if isinstance(groups, str) else list(groups)
    transaction.on_commit(lambda: send_now(targets, event))
