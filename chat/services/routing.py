"""Starting conversations and moving them along the overflow ladder.

Side effects (channel-layer events, Celery timers) are scheduled with
`transaction.on_commit`, so nobody hears of a change that did not commit.
"""

import logging
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from chat import events, policy, protocol, selectors, tasks
from chat.exceptions import ConversationNotFound
from chat.models import (
    Conversation,
    ConversationStatus,
    ConversationStep,
    Message,
    QueueStep,
    Sender,
)
from libraries import directory
from libraries.models import Library
from libraries.selectors import area_libraries, get_library
from refdesk.errors import Forbidden, Unauthenticated
from tickets import selectors as ticket_selectors
from tickets import services as ticket_services

logger = logging.getLogger(__name__)

TOKEN_SALT = "refdesk.chat.patron-token"


def patron_token(conversation_id: UUID) -> str:
    """A signed credential for one conversation; valid until the conversation is purged."""
    return signing.Signer(salt=TOKEN_SALT).sign(str(conversation_id)).split(":", 1)[1]


def check_patron_token(*, conversation_id: UUID, token: str) -> None:
    """Missing token: Unauthenticated (401/4401). Wrong token: Forbidden (403/4403)."""
    if not token:
        raise Unauthenticated("a conversation token is required")
    if not signing.constant_time_compare(token, patron_token(conversation_id)):
        raise Forbidden("this token does not open this conversation")


def _member_library(declared: str) -> Library | None:
    """The member library a patron named as home, by slug or name, any case."""
    declared = " ".join(declared.split()).casefold()
    if not declared:
        return None
    members = sorted(directory.libraries().values(), key=lambda library: library.id)
    return next(
        (m for m in members if declared in (m.slug.casefold(), m.name.casefold())),
        None,
    )


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
        conversation,
        previously_eligible=set(),
        reason="escalated",
        question=question,
        # Nobody holds the token yet: the patron's socket opens with a status.
        tell_patron=False,
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
    tell_patron: bool = True,
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
    if tell_patron:
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
    return status_frame(
        conversation,
        library=directory.library(_shown_library_id(conversation)),
        origin=directory.library(conversation.origin_library_id),
        estimate=(
            selectors.estimated_wait_seconds(step=conversation.queue, now=now)
            if conversation.status == ConversationStatus.WAITING
            else None
        ),
        now=now,
    )


async def apatron_status(
    conversation: Conversation, *, now: datetime | None = None
) -> dict:
    """`patron_status` for the sockets, its one read on the event loop's pool."""
    now = now or timezone.now()
    return status_frame(
        conversation,
        library=await directory.alibrary(_shown_library_id(conversation)),
        origin=await directory.alibrary(conversation.origin_library_id),
        estimate=(
            await selectors.aestimated_wait_seconds(step=conversation.queue, now=now)
            if conversation.status == ConversationStatus.WAITING
            else None
        ),
        now=now,
    )


def _shown_library_id(conversation: Conversation) -> int:
    return conversation.answering_library_id or conversation.origin_library_id


def status_frame(
    conversation: Conversation,
    *,
    library: Library,
    origin: Library,
    estimate: int | None,
    now: datetime,
) -> dict:
    """The `status` frame from what it shows: the library answering (or else
    the origin), the origin (whose hours set `answer_by`) and, while waiting,
    the estimated wait. No queries."""
    waiting = conversation.status == ConversationStatus.WAITING
    frame = protocol.status(
        status=conversation.status,
        queue=protocol.patron_queue(conversation.queue) if waiting else None,
        library=library,
        estimated_wait_seconds=estimate if waiting else None,
    )
    if conversation.status in (
        ConversationStatus.OFFLINE,
        ConversationStatus.ABANDONED,
    ):
        frame["answer_by"] = protocol.iso(
            ticket_selectors.answer_due_for(origin, now=now)
        )
    return frame


def patron_history(
    *, conversation_id: UUID, after_seq: int = 0
) -> tuple[dict, list[dict]]:
    """What a patron socket is sent on resume: its `status` frame, then the
    stored messages after `after_seq` (one thread hop for the consumer)."""
    try:
        conversation = Conversation.objects.only(*_STATUS_FIELDS).get(
            pk=conversation_id
        )
    except Conversation.DoesNotExist:
        raise ConversationNotFound("no such conversation") from None
    return patron_status(conversation), selectors.messages_after(
        conversation_id, after_seq
    )


_STATUS_FIELDS = (
    "status",
    "queue",
    "origin_library_id",
    "answering_library_id",
    "librarian_id",
)


def _send_status(conversation: Conversation) -> None:
    # Re-read what the frame shows: callers may hold a copy older than their update.
    _publish_status(Conversation.objects.only(*_STATUS_FIELDS).get(pk=conversation.pk))


def _publish_status(conversation: Conversation) -> None:
    """Tell the patron's sockets where their chat stands, after commit.
    `conversation` must hold the `_STATUS_FIELDS` as this transaction left them."""
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
