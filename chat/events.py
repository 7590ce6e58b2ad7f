"""Channel-layer group names and sending events after the transaction commits."""

import logging
from collections.abc import Iterable
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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
    """Publish `event` to `groups` from sync code."""
    async_to_sync(send)(groups, event)


def send_on_commit(groups: str | Iterable[str], event: dict) -> None:
    """Send `event` to `groups` once the surrounding transaction commits."""
    targets = [groups] if isinstance(groups, str) else list(groups)
    transaction.on_commit(lambda: send_now(targets, event))
