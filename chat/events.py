"""Channel-layer group names and sending events after the transaction commits."""

import logging
from collections.abc import Iterable
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def conversation_group(conversation_id: UUID | str) -> str:
    """Every patron socket of one conversation."""
    return f"conversation.{conversation_id}"


def library_desks_group(library_id: int) -> str:
    """Every desk socket of one library's librarians: offers and withdrawals."""
    return f"desk.library.{library_id}"


def librarian_desks_group(librarian_id: int) -> str:
    """Every desk socket of one librarian: their chats' messages and state."""
    return f"desk.librarian.{librarian_id}"


def session_desks_group(session_key: str) -> str:
    """Every desk socket of one login session, closed at logout."""
    return f"desk.session.{session_key}"


def send_now(groups: Iterable[str], event: dict) -> None:
    layer = get_channel_layer()
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, event)
        except Exception:
            # Delivery is at most once by design: the message is stored and
            # clients resume by seq. A failed publish must not fail the caller.
            logger.exception("group_send to %s failed", group)


def send_on_commit(groups: str | Iterable[str], event: dict) -> None:
    """Send `event` to `groups` once the surrounding transaction commits."""
    targets = [groups] if isinstance(groups, str) else list(groups)
    transaction.on_commit(lambda: send_now(targets, event))
