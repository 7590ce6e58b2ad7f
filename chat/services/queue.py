"""Accepting, closing, abandoning and transferring conversations."""

import logging
from datetime import datetime
from uuid import UUID

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chat import events, policy, selectors
from chat.exceptions import (
    AlreadyTaken,
    ConversationClosed,
    ConversationNotFound,
    NotYours,
    StateConflict,
)
from chat.models import (
    ClosedBy,
    Conversation,
    ConversationStatus,
    ConversationStep,
    Message,
    Outcome,
    Sender,
)
from chat.services.messages import message_frames, post_message
from chat.services.routing import (
    _announce,
    _leave_step,
    _publish_status,
    _record_step,
    _route_fields,
    _send_status,
    _ticket_if_email,
    apatron_status,
    patron_history,
)
from faq import services as faq_services
from libraries import directory
from libraries.models import Librarian
from libraries.selectors import get_library
from refdesk import asyncdb
from refdesk.errors import NotFound
from tickets import services as ticket_services

logger = logging.getLogger(__name__)

TRANSFER_NOTICE = "A colleague from our network is joining to help with your question."


def accept_conversation(
    *, conversation_id: UUID, librarian: Librarian, now: datetime | None = None
) -> Conversation:
    """Give a waiting chat to the first librarian who accepts it; exactly one wins."""
    now = now or timezone.now()
    for _ in range(3):
        with transaction.atomic():
            seen = Conversation.objects.filter(pk=conversation_id).first()
            if seen is None:
                raise ConversationNotFound("no such conversation")
            if seen.status != ConversationStatus.WAITING:
                raise AlreadyTaken("another librarian has already taken this chat")
            eligible = selectors.eligible_library_ids(seen)
            if librarian.library_id not in eligible:
                raise NotYours("this chat is offered to another library")
            # Conditional update: wins only if the chat is still exactly where
            # this librarian saw it, so racing accepts and escalations have one winner.
            won = Conversation.objects.filter(
                pk=conversation_id,
                status=ConversationStatus.WAITING,
                queue=seen.queue,
                queue_library_id=seen.queue_library_id,
            ).update(
                status=ConversationStatus.ACTIVE,
                librarian=librarian,
                answering_library_id=librarian.library_id,
                accepted_at=now,
                escalate_at=None,
            )
            if not won:
                continue
            _leave_step(conversation_id, "accepted", now)
            # The row as the update left it, without reading it again: the
            # update matched `seen`'s status, queue and queue library and now
            # holds the row's lock, and it set the fields below.
            conversation = seen
            conversation.status = ConversationStatus.ACTIVE
            conversation.librarian = librarian
            conversation.answering_library_id = librarian.library_id
            conversation.accepted_at = now
            conversation.escalate_at = None
            events.send_on_commit(
                [events.library_desks_group(i) for i in sorted(eligible)],
                {
                    "type": "queue.withdraw",
                    "conversation": str(conversation_id),
                    "reason": "accepted",
                },
            )
            accepted = selectors.accepted_payloads([conversation])[0]
            events.send_on_commit(
                events.librarian_desks_group(librarian.pk),
                {"type": "desk.accepted", "frame": accepted},
            )
            _publish_status(conversation)
            return conversation
    raise AlreadyTaken("this chat moved on while being accepted; try again")


async def aaccept_conversation(
    *, conversation_id: UUID, librarian: Librarian, now: datetime | None = None
) -> None:
    """`accept_conversation` for the desk sockets, on the event loop's pool
    (`refdesk.asyncdb`) instead of a turn on Django's single database thread,
    whose ORM work (~4 ms of CPU an accept) held the interpreter lock while
    the loop delivering messages waited (issue 7).

    The same rules, from the same pieces: the eligibility and both frames
    are `selectors.eligible_library_ids_among`, `selectors.accepted_frame` and
    `routing.status_frame`, over the directory's copy of the libraries. The
    take is one statement: the conditional update (the same winner rule as
    `accept_conversation`), the queue step's close and the history read, in
    one transaction. Its events are published once it has committed, in the
    same order."""
    if not asyncdb.available():
        await database_sync_to_async(accept_conversation)(
            conversation_id=conversation_id, librarian=librarian, now=now
        )
        return
    now = now or timezone.now()
    for _ in range(3):
        rows = await asyncdb.fetchall(_SEEN, [conversation_id])
        if not rows:
            raise ConversationNotFound("no such conversation")
        seen = Conversation(
            id=conversation_id, **dict(zip(_SEEN_FIELDS, rows[0], strict=True))
        )
        if seen.status != ConversationStatus.WAITING:
            raise AlreadyTaken("another librarian has already taken this chat")
        libraries = await directory.alibraries()
        eligible = selectors.eligible_library_ids_among(libraries, seen)
        if librarian.library_id not in eligible:
            raise NotYours("this chat is offered to another library")
        taken = await asyncdb.fetchall(
            _TAKE,
            [
                ConversationStatus.ACTIVE.value,
                librarian.pk,
                librarian.library_id,
                now,
                conversation_id,
                ConversationStatus.WAITING.value,
                seen.queue,
                seen.queue_library_id,
                now,
            ],
        )
        if not taken:  # the chat moved on after it was read: read it again
            continue
        conversation = seen
        conversation.status = ConversationStatus.ACTIVE
        conversation.librarian_id = librarian.pk
        conversation.answering_library_id = librarian.library_id
        conversation.accepted_at = now
        conversation.escalate_at = None
        cards = {
            library_id: await directory.alibrary(library_id)
            for library_id in (seen.origin_library_id, seen.home_library_id)
            if library_id
        }
        await events.send(
            [events.library_desks_group(i) for i in sorted(eligible)],
            {
                "type": "queue.withdraw",
                "conversation": str(conversation_id),
                "reason": "accepted",
            },
        )
        await events.send(
            [events.librarian_desks_group(librarian.pk)],
            {
                "type": "desk.accepted",
                "frame": selectors.accepted_frame(
                    conversation, list(message_frames(taken)), cards
                ),
            },
        )
        await events.send(
            [events.conversation_group(conversation_id)],
            {
                "type": "conversation.status",
                "status": await apatron_status(conversation, now=now),
                "librarian_id": librarian.pk,
            },
        )
        return
    raise AlreadyTaken("this chat moved on while being accepted; try again")


_CONVERSATION = Conversation._meta.db_table
_SEEN_FIELDS = (
    "status",
    "queue",
    "queue_library_id",
    "origin_library_id",
    "home_library_id",
    "declared_home_library",
    "postal_code",
    "is_in_area",
    "patron_name",
)
_SEEN = f"SELECT {', '.join(_SEEN_FIELDS)} FROM {_CONVERSATION} WHERE id = %s"
# Wins only if the chat is still exactly where it was read (status, queue and
# queue library), as in `accept_conversation`; no row back means it lost. The
# messages are the snapshot the update ran in: later ones are published to the
# conversation's group, which the desk reads after joining (`SeqOrder`).
_TAKE = (
    f"WITH won AS (UPDATE {_CONVERSATION} SET status = %s, "
    "librarian_id = %s, answering_library_id = %s, accepted_at = %s, "
    "escalate_at = NULL WHERE id = %s AND status = %s AND queue = %s "
    "AND queue_library_id IS NOT DISTINCT FROM %s RETURNING id), "
    f"step AS (UPDATE {ConversationStep._meta.db_table} "
    "SET left_at = %s, left_because = 'accepted' "
    "WHERE conversation_id = (SELECT id FROM won) AND left_at IS NULL) "
    "SELECT NULL, m.seq, m.sender, m.name, m.body, m.client_id, m.sent_at "
    f"FROM won LEFT JOIN {Message._meta.db_table} m "
    "ON m.conversation_id = won.id ORDER BY m.seq"
)


def _lock(conversation_id: UUID) -> Conversation:
    conversation = (
        Conversation.objects.select_for_update(no_key=True)
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise ConversationNotFound("no such conversation")
    return conversation


def _owned_active(conversation_id: UUID, librarian: Librarian) -> Conversation:
    conversation = _lock(conversation_id)
    if conversation.librarian_id != librarian.pk:
        raise NotYours("this chat belongs to another librarian")
    if conversation.status != ConversationStatus.ACTIVE:
        raise ConversationClosed(f"the conversation is {conversation.status}")
    return conversation


@transaction.atomic
def close_conversation(
    *,
    conversation_id: UUID,
    librarian: Librarian,
    outcome: str = "answered",
    note: str = "",
    tags: tuple[str, ...] = (),
    now: datetime | None = None,
) -> Conversation:
    """A librarian ends their chat with an outcome that decides what happens next."""
    conversation = _owned_active(conversation_id, librarian)
    conversation.status = ConversationStatus.CLOSED
    conversation.outcome = outcome
    conversation.close_note = note
    conversation.tags = list(tags)
    conversation.closed_by = ClosedBy.LIBRARIAN
    conversation.closed_at = now or timezone.now()
    conversation.save(
        update_fields=[
            "status",
            "outcome",
            "close_note",
            "tags",
            "closed_by",
            "closed_at",
        ]
    )
    events.send_on_commit(
        events.librarian_desks_group(librarian.pk),
        {
            "type": "desk.closed",
            "conversation": str(conversation_id),
            "by": ClosedBy.LIBRARIAN,
        },
    )
    _send_status(conversation)
    if outcome in ("follow_up_self", "follow_up_home"):
        ticket_services.create_ticket_from_conversation(
            conversation=conversation,
            source=outcome,
            librarian=librarian,
            now=conversation.closed_at,
        )
    return conversation


@transaction.atomic
def patron_close(*, conversation_id: UUID, now: datetime | None = None) -> Conversation:
    """The patron leaves: a waiting chat is abandoned, an active one closed."""
    now = now or timezone.now()
    conversation = _lock(conversation_id)
    if conversation.status == ConversationStatus.WAITING:
        _abandon(conversation, now)
    elif conversation.status == ConversationStatus.ACTIVE:
        conversation.status = ConversationStatus.CLOSED
        conversation.closed_by = ClosedBy.PATRON
        conversation.closed_at = now
        conversation.save(update_fields=["status", "closed_by", "closed_at"])
        events.send_on_commit(
            events.librarian_desks_group(conversation.librarian_id),
            {
                "type": "desk.closed",
                "conversation": str(conversation_id),
                "by": ClosedBy.PATRON,
            },
        )
        _send_status(conversation)
    else:
        raise ConversationClosed(f"the conversation is already {conversation.status}")
    return conversation


def _abandon(conversation: Conversation, now: datetime) -> None:
    eligible = selectors.eligible_library_ids(conversation)
    conversation.status = ConversationStatus.ABANDONED
    conversation.escalate_at = None
    conversation.closed_at = now
    conversation.closed_by = ClosedBy.PATRON
    conversation.save(update_fields=["status", "escalate_at", "closed_at", "closed_by"])
    _leave_step(conversation.id, "abandoned", now)
    events.send_on_commit(
        [events.library_desks_group(i) for i in sorted(eligible)],
        {
            "type": "queue.withdraw",
            "conversation": str(conversation.id),
            "reason": "abandoned",
        },
    )
    _send_status(conversation)
    _ticket_if_email(conversation, "chat_abandoned", now)


@transaction.atomic
def abandon_if_gone(*, conversation_id: UUID, now: datetime | None = None) -> bool:
    """Abandon a waiting chat whose patron has had no socket for the abandon period."""
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_for_update(no_key=True, skip_locked=True)
        .filter(
            pk=conversation_id,
            status=ConversationStatus.WAITING,
            patron_sockets=0,
            patron_seen_at__lte=now - settings.REFDESK_ABANDON_AFTER,
        )
        .first()
    )
    if conversation is None:
        return False
    _abandon(conversation, now)
    return True


@transaction.atomic
def close_as_self_served(
    *, conversation_id: UUID, answer_id: int | None = None, now: datetime | None = None
) -> Conversation:
    """The patron found the answer in the FAQ while waiting: end the chat politely.

    Only a waiting chat ends this way (closed, outcome `self_served`, counted on
    the answer); desks get `withdraw self_served` and the patron `status closed`.
    """
    now = now or timezone.now()
    conversation = _lock(conversation_id)
    if conversation.status != ConversationStatus.WAITING:
        raise StateConflict(f"the conversation is {conversation.status}, not waiting")
    eligible = selectors.eligible_library_ids(conversation)
    conversation.status = ConversationStatus.CLOSED
    conversation.outcome = Outcome.SELF_SERVED
    conversation.close_note = f"FAQ answer {answer_id}" if answer_id else ""
    conversation.escalate_at = None
    conversation.closed_at = now
    conversation.closed_by = ClosedBy.PATRON
    conversation.save(
        update_fields=[
            "status",
            "outcome",
            "close_note",
            "escalate_at",
            "closed_at",
            "closed_by",
        ]
    )
    _leave_step(conversation.id, "self_served", now)
    events.send_on_commit(
        [events.library_desks_group(i) for i in sorted(eligible)],
        {
            "type": "queue.withdraw",
            "conversation": str(conversation.id),
            "reason": "self_served",
        },
    )
    _send_status(conversation)
    if answer_id:
        faq_services.count_self_served(answer_id=answer_id)
    logger.info("conversation %s self-served (answer %s)", conversation.id, answer_id)
    return conversation


def patron_connected(*, conversation_id: UUID, now: datetime | None = None) -> None:
    Conversation.objects.filter(pk=conversation_id).update(
        patron_sockets=F("patron_sockets") + 1, patron_seen_at=now or timezone.now()
    )


def patron_opened(
    *, conversation_id: UUID, after_seq: int = 0, now: datetime | None = None
) -> tuple[dict, list[dict]]:
    """A patron socket opened: count it, then what it is sent first (status and
    the messages after `after_seq`)."""
    patron_connected(conversation_id=conversation_id, now=now)
    return patron_history(conversation_id=conversation_id, after_seq=after_seq)


async def apatron_opened(
    *, conversation_id: UUID, after_seq: int = 0
) -> tuple[dict, list[dict]]:
    """`patron_opened` for the patron sockets: the count, the status and the
    history in one statement on the event loop's pool (`refdesk.asyncdb`),
    plus the wait estimate's read while the chat waits."""
    if not asyncdb.available():
        return await database_sync_to_async(patron_opened)(
            conversation_id=conversation_id, after_seq=after_seq
        )
    now = timezone.now()
    rows = await asyncdb.fetchall(_OPENED, [now, conversation_id, after_seq])
    if not rows:
        raise ConversationNotFound("no such conversation")
    fields = len(_OPENED_FIELDS)
    conversation = Conversation(
        id=conversation_id, **dict(zip(_OPENED_FIELDS, rows[0][:fields], strict=True))
    )
    status = await apatron_status(conversation, now=now)
    # Each row's last field before the message's stands in for `_HISTORY`'s first.
    return status, list(message_frames(row[fields - 1 :] for row in rows))


_OPENED_FIELDS = (
    "status",
    "queue",
    "origin_library_id",
    "answering_library_id",
    "librarian_id",
)
_OPENED = (
    f"WITH opened AS (UPDATE {_CONVERSATION} "
    "SET patron_sockets = patron_sockets + 1, patron_seen_at = %s WHERE id = %s "
    f"RETURNING id, {', '.join(_OPENED_FIELDS)}) "
    f"SELECT {', '.join('o.' + f for f in _OPENED_FIELDS)}, "
    "m.seq, m.sender, m.name, m.body, m.client_id, m.sent_at "
    f"FROM opened o LEFT JOIN {Message._meta.db_table} m "
    "ON m.conversation_id = o.id AND m.seq > %s ORDER BY m.seq"
)


def patron_disconnected(*, conversation_id: UUID, now: datetime | None = None) -> None:
    Conversation.objects.filter(pk=conversation_id, patron_sockets__gt=0).update(
        patron_sockets=F("patron_sockets") - 1, patron_seen_at=now or timezone.now()
    )


@transaction.atomic
def transfer_conversation(
    *,
    conversation_id: UUID,
    librarian: Librarian,
    to_library: str,
    note: str = "",
    now: datetime | None = None,
) -> Conversation:
    """Hand an active chat to another library's queue with a briefing note."""
    now = now or timezone.now()
    conversation = _owned_active(conversation_id, librarian)
    try:
        target = get_library(slug=to_library)
    except NotFound:
        raise NotFound(f"no member library {to_library!r}") from None
    route = policy.route_chat(
        chat=policy.ChatFacts(
            origin_id=target.id, home_id=conversation.home_library_id
        ),
        staffing=selectors.staffing_snapshot(now=now),
        after=None,
        overflow_wait=settings.REFDESK_OVERFLOW_WAIT,
        now=now,
    )
    if route.step == "offline":
        raise StateConflict(
            "nobody is available to take this chat; keep it or close it"
        )
    fields = _route_fields(route, now)
    fields.update(
        queue_library_id=route.queue_library_id or target.id,
        librarian=None,
        answering_library=None,
        accepted_at=None,
        waiting_since=now,
        transfer_note=note,
    )
    for name, value in fields.items():
        setattr(conversation, name, value)
    conversation.save(update_fields=[*fields])
    _record_step(conversation, route, now)
    # The old desks leave the conversation's group first, so the notice below
    # goes to the patron (and the next librarian's history), not to them.
    events.send_on_commit(
        events.librarian_desks_group(librarian.pk),
        {
            "type": "desk.closed",
            "conversation": str(conversation_id),
            "by": ClosedBy.LIBRARIAN,
        },
    )
    post_message(
        conversation_id=conversation.id,
        sender=Sender.SYSTEM,
        body=TRANSFER_NOTICE,
        now=now,
    )
    _announce(conversation, previously_eligible=set(), reason="transferred")
    return conversation


@transaction.atomic
def take_offline_for_follow_up(
    *, conversation_id: UUID, now: datetime | None = None
) -> Conversation:
    """Lock a conversation for the patron's follow-up (tickets.services); a waiting
    chat goes offline at once and desks get `withdraw offline`. Returns the locked
    row in whatever state it is; the caller decides what the state allows."""
    now = now or timezone.now()
    conversation = _lock(conversation_id)
    if conversation.status == ConversationStatus.WAITING:
        previously = selectors.eligible_library_ids(conversation)
        fields = _route_fields(policy.OFFLINE, now)
        for name, value in fields.items():
            setattr(conversation, name, value)
        conversation.save(update_fields=[*fields])
        _leave_step(conversation.id, "follow_up", now)
        _record_step(conversation, policy.OFFLINE, now)
        _announce(conversation, previously_eligible=previously, reason="offline")
    return conversation
