"""Every change to a conversation: start, route, accept, message, transfer, close.

Side effects (channel-layer events, Celery timers) are scheduled with
`transaction.on_commit`, so nobody hears of a change that did not commit.
"""

import logging
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from chat import events, policy, protocol, selectors, tasks
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
    QueueStep,
    Sender,
)
from faq import services as faq_services
from libraries import presence
from libraries.models import Librarian, Library
from libraries.selectors import area_libraries, get_library
from refdesk.errors import Forbidden, NotFound, Unauthenticated
from tickets import selectors as ticket_selectors
from tickets import services as ticket_services

logger = logging.getLogger(__name__)

TOKEN_SALT = "refdesk.chat.patron-token"
TRANSFER_NOTICE = "A colleague from our network is joining to help with your question."


# Patron tokens
# ----------------------------------------------------------------------
def patron_token(conversation_id: UUID) -> str:
    """A signed credential for one conversation; valid until the conversation is purged."""
    return signing.Signer(salt=TOKEN_SALT).sign(str(conversation_id)).split(":", 1)[1]


def check_patron_token(*, conversation_id: UUID, token: str) -> None:
    """Missing token: Unauthenticated (401/4401). Wrong token: Forbidden (403/4403)."""
    if not token:
        raise Unauthenticated("a conversation token is required")
    if not signing.constant_time_compare(token, patron_token(conversation_id)):
        raise Forbidden("this token does not open this conversation")


# Starting and routing
# ----------------------------------------------------------------------
def _member_library(declared: str) -> Library | None:
    declared = " ".join(declared.split())
    if not declared:
        return None
    return Library.objects.filter(
        Q(slug__iexact=declared) | Q(name__iexact=declared)
    ).first()


@transaction.atomic
def start_conversation(
    *,
    library_slug: str,
    question: str,
    name: str = "",
    email: str = "",
    home_library: str = "",
    postal_code: str = "",
    now: datetime | None = None,
) -> tuple[Conversation, str]:
    """Create a conversation with the question as message 1 and route it at once."""
    now = now or timezone.now()
    origin = get_library(slug=library_slug)
    home = _member_library(home_library)
    in_area = home is not None or bool(
        area_libraries(home_library=home_library, postal_code=postal_code)
    )
    route = policy.route_chat(
        chat=policy.ChatFacts(origin_id=origin.id, home_id=home.id if home else None),
        staffing=selectors.staffing_snapshot(now=now),
        after=None,
        overflow_wait=settings.REFDESK_OVERFLOW_WAIT,
        now=now,
    )
    conversation = Conversation.objects.create(
        origin_library=origin,
        queue_library_id=route.queue_library_id or origin.id,
        home_library=home,
        declared_home_library=home_library,
        postal_code=postal_code,
        is_in_area=in_area,
        patron_name=name,
        patron_email=email,
        created_at=now,
        waiting_since=now,
        patron_seen_at=now,
        last_seq=1,
        **_route_fields(route, now),
    )
    Message.objects.create(
        conversation=conversation,
        seq=1,
        sender=Sender.PATRON,
        name=name,
        body=question,
        sent_at=now,
    )
    _record_step(conversation, route, now)
    _announce(
        conversation, previously_eligible=set(), reason="escalated", question=question
    )
    if route.step == "offline":
        _ticket_if_email(conversation, "chat_offline", now)
    return conversation, patron_token(conversation.id)


def _ticket_if_email(conversation: Conversation, source: str, now: datetime) -> None:
    """A chat nobody answered, or that the patron left, becomes a ticket when the
    patron gave an email (issue 5)."""
    if conversation.patron_email:
        ticket_services.create_ticket_from_conversation(
            conversation=conversation, source=source, now=now
        )


def _route_fields(route: policy.Route, now: datetime) -> dict:
    if route.step == "offline":
        return {
            "status": ConversationStatus.OFFLINE,
            "queue": QueueStep.OFFLINE,
            "offered_library_ids": [],
            "escalate_at": None,
        }
    return {
        "status": ConversationStatus.WAITING,
        "queue": route.step,
        "offered_library_ids": list(route.library_ids),
        "escalate_at": route.escalate_at,
        "offered_at": now,
    }


def _record_step(
    conversation: Conversation, route: policy.Route, now: datetime
) -> None:
    ConversationStep.objects.create(
        conversation=conversation,
        step=route.step,
        queue_library_id=route.queue_library_id,
        library_ids=list(route.library_ids),
        entered_at=now,
        left_at=now if route.step == "offline" else None,
        left_because="offline" if route.step == "offline" else "",
    )


def _leave_step(conversation_id: UUID, because: str, now: datetime) -> None:
    ConversationStep.objects.filter(
        conversation_id=conversation_id, left_at__isnull=True
    ).update(left_at=now, left_because=because)


def _announce(
    conversation: Conversation,
    *,
    previously_eligible: set[int],
    reason: str,
    question: str | None = None,
) -> None:
    """Tell desks and the patron where a conversation now stands; arm its timer."""
    eligible = selectors.eligible_library_ids(conversation)
    if eligible:
        if question is None:
            question = (
                Message.objects.filter(conversation=conversation, seq=1)
                .values_list("body", flat=True)
                .first()
                or ""
            )
        item = protocol.queue_item(
            conversation, question=question, slugs=selectors.library_slugs()
        )
        events.send_on_commit(
            [events.library_desks_group(i) for i in sorted(eligible)],
            {"type": "queue.offer", "conversation": item},
        )
    gone = previously_eligible - eligible
    if gone:
        events.send_on_commit(
            [events.library_desks_group(i) for i in sorted(gone)],
            {
                "type": "queue.withdraw",
                "conversation": str(conversation.id),
                "reason": reason,
            },
        )
    _send_status(conversation)
    if conversation.status == ConversationStatus.WAITING and conversation.escalate_at:
        conversation_id, eta = str(conversation.id), conversation.escalate_at
        transaction.on_commit(
            lambda: tasks.escalate_conversation.apply_async(
                args=[conversation_id], eta=eta
            )
        )


def patron_status(conversation: Conversation, *, now: datetime | None = None) -> dict:
    """The patron's `status` frame for the conversation as it stands.

    When nobody can chat (offline, or abandoned before anyone joined) it adds
    `answer_by`: the concrete time an emailed question would be answered by.
    """
    now = now or timezone.now()
    waiting = conversation.status == ConversationStatus.WAITING
    library = (
        conversation.answering_library
        if conversation.answering_library_id
        else conversation.origin_library
    )
    frame = protocol.status(
        status=conversation.status,
        queue=protocol.patron_queue(conversation.queue) if waiting else None,
        library=library,
        estimated_wait_seconds=(
            selectors.estimated_wait_seconds(step=conversation.queue, now=now)
            if waiting
            else None
        ),
    )
    if conversation.status in (
        ConversationStatus.OFFLINE,
        ConversationStatus.ABANDONED,
    ):
        frame["answer_by"] = protocol.iso(
            ticket_selectors.answer_due_for(conversation.origin_library, now=now)
        )
    return frame


def _send_status(conversation: Conversation) -> None:
    conversation = selectors.get_conversation(conversation.id)
    events.send_on_commit(
        events.conversation_group(conversation.id),
        {
            "type": "conversation.status",
            "status": patron_status(conversation),
            "librarian_id": conversation.librarian_id,
        },
    )


def _reroute(
    conversation: Conversation, *, after: str | None, reason: str, now: datetime
) -> None:
    """Apply the policy's next step to a locked, waiting conversation."""
    previously = selectors.eligible_library_ids(conversation)
    route = policy.route_chat(
        chat=policy.ChatFacts(
            origin_id=conversation.queue_library_id,
            home_id=conversation.home_library_id,
        ),
        staffing=selectors.staffing_snapshot(now=now),
        after=after,
        overflow_wait=settings.REFDESK_OVERFLOW_WAIT,
        now=now,
    )
    fields = _route_fields(route, now)
    if route.queue_library_id:
        fields["queue_library_id"] = route.queue_library_id
    for name, value in fields.items():
        setattr(conversation, name, value)
    conversation.save(update_fields=[*fields])
    _leave_step(conversation.id, reason, now)
    _record_step(conversation, route, now)
    _announce(
        conversation,
        previously_eligible=previously,
        reason="offline" if route.step == "offline" else "escalated",
    )
    if route.step == "offline":
        _ticket_if_email(conversation, "chat_offline", now)
    logger.info("conversation %s moved to %s (%s)", conversation.id, route.step, reason)


@transaction.atomic
def escalate_if_due(*, conversation_id: UUID, now: datetime | None = None) -> bool:
    """Move a waiting chat whose step's wait ran out to its next step.

    Idempotent: a late, duplicated or already-swept call finds the chat no
    longer due (or no longer waiting) and changes nothing.
    """
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_for_update(no_key=True, skip_locked=True)
        .filter(
            pk=conversation_id, status=ConversationStatus.WAITING, escalate_at__lte=now
        )
        .first()
    )
    if conversation is None:
        return False
    _reroute(conversation, after=conversation.queue, reason="timeout", now=now)
    return True


def sweep_due_conversations(*, now: datetime | None = None) -> int:
    """Escalate every overdue chat a lost, late or duplicated timer missed."""
    now = now or timezone.now()
    return sum(
        escalate_if_due(conversation_id=cid, now=now)
        for cid in selectors.due_conversation_ids(now=now)
    )


@transaction.atomic
def reroute_unstaffed(*, now: datetime | None = None) -> int:
    """Move on at once every waiting chat whose step has nobody staffed any more."""
    now = now or timezone.now()
    staffing = selectors.staffing_snapshot(now=now)
    moved = 0
    for candidate in selectors.waiting_conversations():
        eligible = selectors.eligible_library_ids(candidate)
        if policy.still_routable(
            route_step=candidate.queue, library_ids=sorted(eligible), staffing=staffing
        ):
            continue
        conversation = (
            Conversation.objects.select_for_update(no_key=True, skip_locked=True)
            .filter(
                pk=candidate.pk,
                status=ConversationStatus.WAITING,
                queue=candidate.queue,
            )
            .first()
        )
        if conversation is not None:
            _reroute(
                conversation, after=conversation.queue, reason="unstaffed", now=now
            )
            moved += 1
    return moved


# Accepting
# ----------------------------------------------------------------------
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
            conversation = selectors.get_conversation(conversation_id)
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
            _send_status(conversation)
            return conversation
    raise AlreadyTaken("this chat moved on while being accepted; try again")


# Messages
# ----------------------------------------------------------------------
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


# Closing, leaving, transferring
# ----------------------------------------------------------------------
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


def patron_connected(*, conversation_id: UUID, now: datetime | None = None) -> None:
    Conversation.objects.filter(pk=conversation_id).update(
        patron_sockets=F("patron_sockets") + 1, patron_seen_at=now or timezone.now()
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
    post_message(
        conversation_id=conversation.id,
        sender=Sender.SYSTEM,
        body=TRANSFER_NOTICE,
        now=now,
    )
    events.send_on_commit(
        events.librarian_desks_group(librarian.pk),
        {
            "type": "desk.closed",
            "conversation": str(conversation_id),
            "by": ClosedBy.LIBRARIAN,
        },
    )
    _announce(conversation, previously_eligible=set(), reason="transferred")
    return conversation


# Presence
# ----------------------------------------------------------------------
def desk_heard(*, librarian: Librarian, socket_id: str, available: bool) -> None:
    presence.touch(
        library_id=librarian.library_id,
        librarian_id=librarian.pk,
        socket_id=socket_id,
        available=available,
    )


def desk_left(*, socket_id: str, now: datetime | None = None) -> int:
    """A desk socket closed or went away: chats its absence leaves unstaffed move on."""
    presence.drop(socket_id=socket_id)
    return reroute_unstaffed(now=now)


def expire_silent_desks(*, now: datetime | None = None) -> int:
    """Forget desks that stopped sending heartbeats and re-route what they left behind."""
    expired = presence.expire_desks()
    if expired:
        logger.info("presence expired for %d desk socket(s)", len(expired))
    return reroute_unstaffed(now=now)


def sign_off_after_closing(*, now: datetime | None = None) -> int:
    """At closing time, sign off every available librarian of a closed library who
    is not in a chat; those mid-chat stay until they finish."""
    from libraries.models import Librarian as LibrarianModel
    from libraries.services import sign_off_librarian

    now = now or timezone.now()
    staffing = selectors.staffing_snapshot(now=now)
    closed = {lid for lid, s in staffing.items() if not s.is_open}
    present = presence.available_librarians()
    candidates = {lbr for lib, ids in present.items() if lib in closed for lbr in ids}
    if not candidates:
        return 0
    busy = set(
        Conversation.objects.filter(
            status=ConversationStatus.ACTIVE, librarian_id__in=candidates
        ).values_list("librarian_id", flat=True)
    )
    signed_off = 0
    for librarian in LibrarianModel.objects.filter(pk__in=candidates - busy):
        sign_off_librarian(librarian=librarian, acting_user=None)
        signed_off += 1
    return signed_off
