"""Messages: stored with a gap-free `seq` first, delivered after commit."""

import logging
from datetime import datetime
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat import events, protocol, selectors
from chat.exceptions import (
    ConversationClosed,
    ConversationNotFound,
    NotYours,
)
from chat.models import (
    Conversation,
    ConversationStatus,
    Message,
    Sender,
)
from libraries.models import Librarian

logger = logging.getLogger(__name__)


def post_message(
    *,
    conversation_id: UUID,
    sender: str,
    body: str,
    client_id: str = "",
    librarian: Librarian | None = None,
    name: str = "",
    now: datetime | None = None,
) -> tuple[Message, bool]:
    """Store a message with the next `seq`, then deliver it; a retried `client_id` is
    stored once. Returns the message and whether this call stored it."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            seq, librarian_id, patron_name = _next_seq(
                conversation_id, sender=sender, librarian=librarian, now=now
            )
            message = Message.objects.create(
                conversation_id=conversation_id,
                seq=seq,
                sender=sender,
                librarian=librarian,
                name=name
                or (
                    librarian.display_name
                    if librarian
                    else ""
                    if sender == Sender.SYSTEM
                    else patron_name
                ),
                body=body,
                client_id=client_id,
                sent_at=now,
            )
            _deliver(message, librarian_id)
            return message, True
    except IntegrityError:
        if not client_id:
            raise
        stored = Message.objects.filter(
            conversation_id=conversation_id, sender=sender, client_id=client_id
        ).first()
        if stored is None:
            raise
        return stored, False


def _deliver(message: Message, librarian_id: int | None) -> None:
    frame = protocol.message(message)
    event = {
        "type": "conversation.message",
        "message": frame,
        "conversation": str(message.conversation_id),
    }
    groups = [events.conversation_group(message.conversation_id)]
    if librarian_id:
        groups.append(events.librarian_desks_group(librarian_id))
    events.send_on_commit(groups, event)


def _next_seq(
    conversation_id: UUID, *, sender: str, librarian: Librarian | None, now: datetime
) -> tuple[int, int | None, str]:
    """Take the next `seq` with one conditional update that also locks the row.

    Concurrent senders queue on the row lock, so `seq` has no gaps; a failed
    insert rolls the increment back with the transaction.
    """
    table = connection.ops.quote_name(Conversation._meta.db_table)
    pk = Conversation._meta.pk.get_db_prep_value(conversation_id, connection)
    if sender == Sender.LIBRARIAN:
        sql = (
            f"UPDATE {table} SET last_seq = last_seq + 1, "
            "first_reply_at = COALESCE(first_reply_at, %s) "
            "WHERE id = %s AND status = %s AND librarian_id = %s "
            "RETURNING last_seq, librarian_id, patron_name"
        )
        params = [now, pk, ConversationStatus.ACTIVE.value, librarian.pk]
    else:
        sql = (
            f"UPDATE {table} SET last_seq = last_seq + 1 "
            "WHERE id = %s AND status IN (%s, %s) "
            "RETURNING last_seq, librarian_id, patron_name"
        )
        params = [pk, ConversationStatus.WAITING.value, ConversationStatus.ACTIVE.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        _explain_refused_message(conversation_id, sender=sender, librarian=librarian)
    return row[0], row[1], row[2]


def _explain_refused_message(
    conversation_id: UUID, *, sender: str, librarian: Librarian | None
) -> None:
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        raise ConversationNotFound("no such conversation")
    if sender == Sender.LIBRARIAN and conversation.librarian_id != librarian.pk:
        raise NotYours("this chat belongs to another librarian")
    raise ConversationClosed(f"the conversation is {conversation.status}")


def typing_target(
    *, conversation_id: UUID, librarian: Librarian | None = None
) -> list[str]:
    """Groups that should see typing from one side: only the other party."""
    conversation = selectors.get_conversation(conversation_id)
    if librarian is not None:
        if conversation.librarian_id != librarian.pk:
            raise NotYours("this chat belongs to another librarian")
        if conversation.status != ConversationStatus.ACTIVE:
            raise ConversationClosed(f"the conversation is {conversation.status}")
        return [events.conversation_group(conversation_id)]
    if conversation.status == ConversationStatus.ACTIVE and conversation.librarian_id:
        return [events.librarian_desks_group(conversation.librarian_id)]
    return []


def librarian_messages_after(
    *, conversation_id: UUID, librarian: Librarian, after_seq: int
) -> list[dict]:
    conversation = selectors.get_conversation(conversation_id)
    if conversation.librarian_id != librarian.pk:
        raise NotYours("this chat belongs to another librarian")
    return selectors.desk_messages_after(conversation_id, after_seq)
