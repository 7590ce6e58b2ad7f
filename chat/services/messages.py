"""Messages: stored with a gap-free `seq` first, delivered after commit."""

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from uuid import UUID

from channels.db import database_sync_to_async
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg.errors import UniqueViolation

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
from refdesk import asyncdb
from refdesk.errors import RefdeskError

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
    stored once. Returns the message and whether this call stored it.

    The ORM version, for sync callers (system notices, the embedded SQLite
    default); sockets on PostgreSQL use `apost_message`.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            seq, patron_name = _next_seq(
                conversation_id, sender=sender, librarian=librarian, now=now
            )
            message = Message.objects.create(
                conversation_id=conversation_id,
                seq=seq,
                sender=sender,
                librarian=librarian,
                name=_or_patron(_sender_name(sender, librarian, name), patron_name),
                body=body,
                client_id=client_id,
                sent_at=now,
            )
            events.send_on_commit(
                *_delivery(conversation_id, protocol.message(message))
            )
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


async def apost_message(
    *,
    conversation_id: UUID,
    sender: str,
    body: str,
    client_id: str = "",
    librarian: Librarian | None = None,
) -> tuple[dict, bool]:
    """`post_message` for the sockets: one statement on the event loop's own pool
    (`refdesk.asyncdb`) instead of a turn on Django's single database thread,
    then one publish. Returns the message frame and whether this call stored it.

    The statement takes the next `seq` with the conditional row-locking update
    and inserts the message in one transaction: a retried `client_id` violates
    the unique constraint, which rolls the increment back, so `seq` stays
    gap-free exactly as in `post_message`. Under load the transaction holds
    other messages of this process too (`asyncdb.write`, group commit); each
    caller still gets its own message's outcome.
    """
    if not asyncdb.available():
        message, stored = await database_sync_to_async(post_message)(
            conversation_id=conversation_id,
            sender=sender,
            body=body,
            client_id=client_id,
            librarian=librarian,
        )
        return protocol.message(message), stored
    now = timezone.now()
    name = _sender_name(sender, librarian, "")
    update, update_params = _seq_update(conversation_id, sender, librarian, now)
    try:
        row = await asyncdb.write(
            _INSERT_TAKING_SEQ.format(update=update),
            [
                *update_params,
                sender,
                librarian.pk if librarian else None,
                name,
                body,
                client_id,
                now,
            ],
            order=conversation_id,
        )
    except UniqueViolation as error:
        if not client_id or error.diag.constraint_name != CLIENT_ID_UNIQUE:
            raise
        [(seq, name, body, now)] = await asyncdb.fetchall(
            _STORED_BY_CLIENT_ID, [conversation_id, sender, client_id]
        )
        now = now.astimezone(UTC)  # the session's time zone is the server's
        stored = False
    else:
        if row is None:
            state = await asyncdb.fetchall(_STATE, [conversation_id])
            raise _refusal(state[0] if state else None, sender, librarian)
        seq, name = row
        stored = True
    frame = protocol.message(
        Message(
            conversation_id=conversation_id,
            seq=seq,
            sender=sender,
            name=name,
            body=body,
            client_id=client_id,
            sent_at=now,
        )
    )
    if stored:
        await events.send(*_delivery(conversation_id, frame))
    return frame, stored


_CONVERSATION = Conversation._meta.db_table
_MESSAGE = Message._meta.db_table
CLIENT_ID_UNIQUE = "message_client_id_unique"
_INSERT_TAKING_SEQ = (
    "WITH taken AS ({update} RETURNING id, last_seq, patron_name) "
    f"INSERT INTO {_MESSAGE} "
    "(conversation_id, seq, sender, librarian_id, name, body, client_id, sent_at) "
    "SELECT id, last_seq, %s, %s, COALESCE(%s, patron_name), %s, %s, %s FROM taken "
    "RETURNING seq, name"
)
_STORED_BY_CLIENT_ID = (
    f"SELECT seq, name, body, sent_at FROM {_MESSAGE} "
    "WHERE conversation_id = %s AND sender = %s AND client_id = %s"
)
_STATE = f"SELECT status, librarian_id FROM {_CONVERSATION} WHERE id = %s"
_HISTORY = (
    "SELECT c.librarian_id, m.seq, m.sender, m.name, m.body, m.client_id, m.sent_at "
    f"FROM {_CONVERSATION} c LEFT JOIN {_MESSAGE} m "
    "ON m.conversation_id = c.id AND m.seq > %s WHERE c.id = %s ORDER BY m.seq"
)


def _or_patron(name: str | None, patron_name: str) -> str:
    return patron_name if name is None else name


def _sender_name(sender: str, librarian: Librarian | None, name: str) -> str | None:
    """The name shown with a message; None means the patron's stored name."""
    if name:
        return name
    if librarian is not None:
        return librarian.display_name
    return "" if sender == Sender.SYSTEM else None


def _delivery(conversation_id: UUID, frame: dict) -> tuple[list[str], dict]:
    """Where a stored message goes: its conversation's group, which the patron's
    sockets and the owning librarian's desks have joined."""
    return [events.conversation_group(conversation_id)], {
        "type": "conversation.message",
        "message": frame,
        "conversation": str(conversation_id),
    }


def _next_seq(
    conversation_id: UUID, *, sender: str, librarian: Librarian | None, now: datetime
) -> tuple[int, str]:
    """Take the next `seq` with one conditional update that also locks the row.

    Concurrent senders queue on the row lock, so `seq` has no gaps; a failed
    insert rolls the increment back with the transaction.
    """
    pk = Conversation._meta.pk.get_db_prep_value(conversation_id, connection)
    update, params = _seq_update(pk, sender, librarian, now)
    with connection.cursor() as cursor:
        cursor.execute(f"{update} RETURNING last_seq, patron_name", params)
        row = cursor.fetchone()
    if row is None:
        state = (
            Conversation.objects.filter(pk=conversation_id)
            .values_list("status", "librarian_id")
            .first()
        )
        raise _refusal(state, sender, librarian)
    return row[0], row[1]


def _seq_update(
    pk, sender: str, librarian: Librarian | None, now: datetime
) -> tuple[str, list]:
    """The conditional `UPDATE` that takes the next `seq`: only an open chat, and
    for a librarian only their own active one (first reply time kept). `pk` is
    the conversation's id as the driver takes it."""
    if sender == Sender.LIBRARIAN:
        return (
            f"UPDATE {_CONVERSATION} SET last_seq = last_seq + 1, "
            "first_reply_at = COALESCE(first_reply_at, %s) "
            "WHERE id = %s AND status = %s AND librarian_id = %s",
            [now, pk, ConversationStatus.ACTIVE.value, librarian.pk],
        )
    return (
        f"UPDATE {_CONVERSATION} SET last_seq = last_seq + 1 "
        "WHERE id = %s AND status IN (%s, %s)",
        [
            pk,
            ConversationStatus.WAITING.value,
            ConversationStatus.ACTIVE.value,
        ],
    )


def _refusal(
    state: tuple[str, int | None] | None, sender: str, librarian: Librarian | None
) -> RefdeskError:
    """Why a conversation refused a message, from its (status, librarian_id)."""
    if state is None:
        return ConversationNotFound("no such conversation")
    status, librarian_id = state
    if sender == Sender.LIBRARIAN and librarian_id != librarian.pk:
        return NotYours("this chat belongs to another librarian")
    return ConversationClosed(f"the conversation is {status}")


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
    """The owning librarian's stored messages after `after_seq`, in the desk shape."""
    conversation = selectors.get_conversation(conversation_id)
    if conversation.librarian_id != librarian.pk:
        raise NotYours("this chat belongs to another librarian")
    return selectors.desk_messages_after(conversation_id, after_seq)


async def alibrarian_messages_after(
    *, conversation_id: UUID, librarian: Librarian, after_seq: int
) -> list[dict]:
    """`librarian_messages_after` for the desk sockets (the read after an accept,
    a resume, a gap fill): one statement on the event loop's pool
    (`refdesk.asyncdb`) instead of a turn on Django's single database thread,
    whose ORM work holds the interpreter lock the loop delivering messages
    needs."""
    if not asyncdb.available():
        return await database_sync_to_async(librarian_messages_after)(
            conversation_id=conversation_id,
            librarian=librarian,
            after_seq=after_seq,
        )
    rows = await _read_after(conversation_id, after_seq)
    if rows[0][0] != librarian.pk:
        raise NotYours("this chat belongs to another librarian")
    return [
        protocol.desk_message(frame, conversation_id) for frame in message_frames(rows)
    ]


async def amessages_after(*, conversation_id: UUID, after_seq: int) -> list[dict]:
    """`selectors.messages_after` for the patron sockets (a gap left open in
    their `seq` order), on the event loop's pool like the desks' reads: under
    load gaps come often, and each ORM read there queued on the one database
    thread and held the interpreter lock the loop needed."""
    if not asyncdb.available():
        return await database_sync_to_async(selectors.messages_after)(
            conversation_id, after_seq
        )
    return list(message_frames(await _read_after(conversation_id, after_seq)))


async def _read_after(conversation_id: UUID, after_seq: int) -> list[tuple]:
    """The conversation's owner, then its messages after `after_seq` (none: one
    row of NULLs); an unknown conversation raises ConversationNotFound."""
    rows = await asyncdb.fetchall(_HISTORY, [after_seq, conversation_id])
    if not rows:
        raise ConversationNotFound("no such conversation")
    return rows


def message_frames(rows: Iterable[tuple]) -> Iterator[dict]:
    """Patron-shape frames of rows shaped like `_HISTORY`'s (a first column
    ignored, then the message's; a row of NULLs from the outer join yields
    nothing), in `seq` order, times in UTC (the pool's sessions keep the
    server's zone)."""
    for _, seq, sender, name, body, client_id, sent_at in rows:
        if seq is not None:
            yield protocol.message(
                Message(
                    seq=seq,
                    sender=sender,
                    name=name,
                    body=body,
                    client_id=client_id,
                    sent_at=sent_at.astimezone(UTC),
                )
            )
