"""Creating tickets from every source, and the librarians' work on them.

Every outgoing mail is stored as an outbound `TicketMessage` first and sent by
`tasks.send_ticket_email` after the commit (see `services.outbound`).
"""

import logging
from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from libraries.models import Librarian, Library
from libraries.selectors import get_library, library_hours
from tickets import selectors, sla
from tickets.exceptions import (
    AlreadyTaken,
    Forbidden,
    NotYours,
    StateConflict,
    ValidationFailed,
)
from tickets.models import (
    Direction,
    Ticket,
    TicketCounter,
    TicketMessage,
    TicketSource,
    TicketStatus,
)
from tickets.services import outbound

logger = logging.getLogger(__name__)

MAX_BODY_CHARS = 20_000
SUBJECT_CHARS = 120
CONVERSATION_SOURCES = {
    TicketSource.FOLLOW_UP,
    TicketSource.CHAT_OFFLINE,
    TicketSource.CHAT_ABANDONED,
    TicketSource.FOLLOW_UP_SELF,
    TicketSource.FOLLOW_UP_HOME,
}


# Creating
# ----------------------------------------------------------------------
def next_reference(now: datetime) -> str:
    """`RD-YY-NNNNNN`, numbered per year from one counter row.

    The increment is one conditional update, whose row lock makes concurrent
    creators wait their turn until commit, so numbers are unique and a rolled
    back ticket gives its number back.
    """
    year = now.astimezone(ZoneInfo("UTC")).year % 100
    TicketCounter.objects.bulk_create([TicketCounter(year=year)], ignore_conflicts=True)
    TicketCounter.objects.filter(year=year).update(last=F("last") + 1)
    number = TicketCounter.objects.filter(year=year).values_list("last", flat=True).get()
    return f"RD-{year:02d}-{number:06d}"


def subject_from(text: str) -> str:
    """A subject from the first non-blank line of a question."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) > SUBJECT_CHARS:
        line = line[: SUBJECT_CHARS - 1].rstrip() + "…"
    return line or "(no subject)"


def _deadlines(library: Library, now: datetime) -> sla.SlaDeadlines:
    hours = None if library.always_open else library_hours(library)
    return sla.deadlines(
        created_at=now,
        sla=settings.REFDESK_TICKET_SLA,
        hours=hours,
        pool_share=settings.REFDESK_TICKET_POOL_SHARE,
        risk_share=settings.REFDESK_TICKET_RISK_SHARE,
    )


def _new_ticket(
    *,
    library: Library,
    source: str,
    subject: str,
    now: datetime,
    patron_name: str = "",
    patron_email: str = "",
    **fields,
) -> Ticket:
    deadlines = _deadlines(library, now)
    ticket = Ticket.objects.create(
        reference=next_reference(now),
        library=library,
        source=source,
        subject=subject[:200],
        patron_name=patron_name[:100],
        patron_email=patron_email,
        pool_at=deadlines.pool_at,
        risk_at=deadlines.risk_at,
        due_by=deadlines.due_by,
        created_at=now,
        last_activity_at=now,
        **fields,
    )
    logger.info("ticket %s created (%s) for library %s", ticket.pk, source, library.pk)
    return ticket


def add_message(
    ticket: Ticket,
    *,
    direction: str,
    body: str,
    now: datetime,
    author: str = "",
    librarian: Librarian | None = None,
    **fields,
) -> TicketMessage:
    if "message_id" not in fields and direction == Direction.INBOUND:
        # Mail from a form or a chat has no Message-ID: give it one, so that
        # every reply can name what it answers.
        fields["message_id"] = outbound.new_message_id(f"{ticket.reference}.in")
    return TicketMessage.objects.create(
        ticket=ticket,
        direction=direction,
        body=body,
        author=author[:200],
        librarian=librarian,
        created_at=now,
        **fields,
    )


@transaction.atomic
def create_ticket_from_question(
    *,
    library_slug: str,
    question: str,
    email: str,
    name: str = "",
    home_library: str = "",
    postal_code: str = "",
    now: datetime | None = None,
) -> Ticket:
    """The offline question form: a ticket, the question, the confirmation."""
    now = now or timezone.now()
    library = get_library(slug=library_slug)
    ticket = _new_ticket(
        library=library,
        source=TicketSource.QUESTION_FORM,
        subject=subject_from(question),
        patron_name=name,
        patron_email=email,
        declared_home_library=home_library,
        postal_code=postal_code,
        now=now,
    )
    add_message(
        ticket,
        direction=Direction.INBOUND,
        body=question,
        full_body=question,
        author=name or email,
        from_address=email,
        now=now,
    )
    outbound.queue_confirmation(ticket, question=question, now=now)
    return ticket


def _owning_library(conversation, source: str, librarian: Librarian | None) -> Library:
    if source == TicketSource.FOLLOW_UP_SELF and librarian and librarian.library_id:
        return librarian.library
    if source == TicketSource.FOLLOW_UP_HOME and conversation.home_library_id:
        return conversation.home_library
    return conversation.origin_library


def transcript_text(
    conversation, messages: list[dict], *, labelled: bool = False
) -> str:
    """The chat as plain text, times in the origin library's zone; a lone
    question stays as the patron wrote it unless `labelled`."""
    zone = ZoneInfo(conversation.origin_library.timezone)
    if not labelled and len(messages) == 1 and messages[0]["sender"] == "patron":
        return messages[0]["body"]
    lines = []
    for message in messages:
        sent = datetime.fromisoformat(message["sent_at"]).astimezone(zone)
        who = {
            "patron": message.get("name") or "Patron",
            "librarian": message.get("name") or "Librarian",
        }.get(message["sender"], settings.REFDESK_CONSORTIUM_NAME)
        lines.append(f"[{sent:%H:%M}] {who}: {message['body']}")
    return "\n".join(lines)


def create_ticket_from_conversation(
    *,
    conversation,
    source: str,
    email: str = "",
    librarian: Librarian | None = None,
    now: datetime | None = None,
) -> Ticket:
    """A chat becomes a ticket, with its transcript; one ticket per conversation.

    Called by chat services inside their transaction, with the conversation
    row locked: chats nobody answered (`chat_offline`), chats the patron left
    (`chat_abandoned`), follow-up close outcomes and the follow-up API.
    """
    from chat import selectors as chat_selectors

    if source not in CONVERSATION_SOURCES:
        raise ValueError(f"not a conversation source: {source}")
    now = now or timezone.now()
    with transaction.atomic():
        existing = selectors.ticket_for_conversation(conversation.pk)
        if existing is not None:
            return existing
        messages = chat_selectors.messages_after(conversation.pk, 0)
        question = next(
            (m["body"] for m in messages if m["sender"] == "patron"), "(no question)"
        )
        email = email or conversation.patron_email
        claim = {}
        if source == TicketSource.FOLLOW_UP_SELF and librarian is not None:
            claim = {
                "claimed_by": librarian,
                "claimed_at": now,
                "status": TicketStatus.OPEN,
            }
        ticket = _new_ticket(
            library=_owning_library(conversation, source, librarian),
            source=source,
            subject=subject_from(question),
            patron_name=conversation.patron_name,
            patron_email=email,
            declared_home_library=conversation.declared_home_library,
            postal_code=conversation.postal_code,
            conversation=conversation,
            tags=list(conversation.tags or []),
            now=now,
            **claim,
        )
        transcript = transcript_text(conversation, messages)
        add_message(
            ticket,
            direction=Direction.INBOUND,
            body=transcript,
            full_body=transcript,
            author=conversation.patron_name or email or "Patron (chat)",
            from_address=email,
            now=now,
        )
        if conversation.close_note and librarian is not None:
            add_message(
                ticket,
                direction=Direction.INTERNAL,
                body=f"Closing note: {conversation.close_note}",
                author=librarian.display_name,
                librarian=librarian,
                now=now,
            )
        if email:
            outbound.queue_confirmation(ticket, question=transcript, now=now)
        return ticket


@transaction.atomic
def follow_up_conversation(
    *, conversation_id: UUID, token: str, email: str, now: datetime | None = None
) -> tuple[Ticket, bool]:
    """The patron leaves an email for a chat: the ticket, and whether this call made it.

    Allowed while waiting (the chat goes offline at once), offline or abandoned;
    a conversation that already has a ticket answers with it (and gains the
    email if it had none); an active or closed chat without one is a conflict.
    """
    from chat import services as chat_services
    from chat.models import ConversationStatus

    now = now or timezone.now()
    chat_services.check_patron_token(conversation_id=conversation_id, token=token)
    conversation = chat_services.take_offline_for_follow_up(
        conversation_id=conversation_id, now=now
    )
    existing = selectors.ticket_for_conversation(conversation.pk)
    if existing is not None:
        if not existing.patron_email:
            existing.patron_email = email
            existing.save(update_fields=["patron_email"])
            first = existing.messages.filter(direction=Direction.INBOUND).first()
            outbound.queue_confirmation(
                existing, question=first.body if first else "", now=now
            )
        return existing, False
    if conversation.status in (ConversationStatus.ACTIVE, ConversationStatus.CLOSED):
        raise StateConflict(
            f"the conversation is {conversation.status}; a follow-up is for chats "
            "nobody answered"
        )
    ticket = create_ticket_from_conversation(
        conversation=conversation, source=TicketSource.FOLLOW_UP, email=email, now=now
    )
    return ticket, True


@transaction.atomic
def email_transcript(
    *, conversation_id: UUID, token: str, email: str, now: datetime | None = None
) -> bool:
    """The patron asks for the chat's transcript by email; False when not sent."""
    from chat import selectors as chat_selectors
    from chat import services as chat_services

    from tickets import tasks

    now = now or timezone.now()
    chat_services.check_patron_token(conversation_id=conversation_id, token=token)
    conversation = chat_selectors.get_conversation(conversation_id)
    ticket = selectors.ticket_for_conversation(conversation.pk)
    if ticket is None:
        if not outbound.outgoing.may_send_to(email):
            return False
        tasks.send_chat_transcript.delay_on_commit(str(conversation.pk), email)
        return True
    transcript = transcript_text(
        conversation, chat_selectors.messages_after(conversation.pk, 0), labelled=True
    )
    queued = outbound.queue_transcript(
        ticket, transcript=transcript, to_address=email, now=now
    )
    return queued is not None


# Working on tickets
# ----------------------------------------------------------------------
def _locked(reference: str) -> Ticket:
    ticket = (
        Ticket.objects.select_for_update(no_key=True, of=("self",))
        .select_related("library", "claimed_by")
        .filter(reference=reference.upper())
        .first()
    )
    if ticket is None:
        raise selectors.TicketNotFound(f"no ticket {reference!r}")
    return ticket


def _check_visible(librarian: Librarian, ticket: Ticket) -> None:
    if not selectors.can_see(librarian, ticket):
        raise Forbidden("this ticket belongs to another library and is not in the pool")


def _check_not_claimed_by_other(librarian: Librarian, ticket: Ticket) -> None:
    if (
        ticket.claimed_by_id
        and ticket.claimed_by_id != librarian.pk
        and not selectors.may_manage(librarian, ticket)
    ):
        raise NotYours(f"{ticket.claimed_by.display_name} has claimed this ticket")


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationFailed("body: this field is required", errors={"body": ["required"]})
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed(
            f"body: at most {MAX_BODY_CHARS} characters",
            errors={"body": [f"at most {MAX_BODY_CHARS} characters"]},
        )
    return body


@transaction.atomic
def claim_ticket(
    *, reference: str, librarian: Librarian, now: datetime | None = None
) -> Ticket:
    """Take an unclaimed ticket of one's library or the pool; exactly one claimer wins."""
    now = now or timezone.now()
    scope = Q() if selectors.sees_everything(librarian) else (
        Q(library_id=librarian.library_id) | Q(in_pool=True)
    )
    won = (
        Ticket.objects.filter(scope, reference=reference.upper(), claimed_by__isnull=True)
        .exclude(status=TicketStatus.CLOSED)
        .update(
            claimed_by=librarian,
            claimed_at=now,
            last_activity_at=now,
            status=Case(
                When(status=TicketStatus.NEW, then=Value(TicketStatus.OPEN)),
                default=F("status"),
            ),
        )
    )
    ticket = selectors.get_ticket(reference)
    if won or ticket.claimed_by_id == librarian.pk:
        return ticket
    _check_visible(librarian, ticket)
    if ticket.status == TicketStatus.CLOSED:
        raise StateConflict("the ticket is closed; reopen it first")
    if ticket.claimed_by_id is None:
        raise Forbidden("this ticket belongs to another library and is not in the pool")
    raise AlreadyTaken(f"{ticket.claimed_by.display_name} has already claimed it")


@transaction.atomic
def release_ticket(
    *, reference: str, librarian: Librarian, now: datetime | None = None
) -> Ticket:
    now = now or timezone.now()
    ticket = _locked(reference)
    _check_visible(librarian, ticket)
    if ticket.claimed_by_id is None:
        return ticket
    _check_not_claimed_by_other(librarian, ticket)
    ticket.claimed_by = None
    ticket.claimed_at = None
    ticket.last_activity_at = now
    ticket.save(update_fields=["claimed_by", "claimed_at", "last_activity_at"])
    return ticket


@transaction.atomic
def reply_to_ticket(
    *, reference: str, librarian: Librarian, body: str, now: datetime | None = None
) -> TicketMessage:
    """A librarian answers by email; an unclaimed ticket becomes theirs."""
    now = now or timezone.now()
    body = _clean_body(body)
    ticket = _locked(reference)
    _check_visible(librarian, ticket)
    _check_not_claimed_by_other(librarian, ticket)
    if not ticket.patron_email:
        raise StateConflict("this patron left no email address; add a note instead")
    if ticket.claimed_by_id is None:
        ticket.claimed_by, ticket.claimed_at = librarian, now
    message = outbound.queue_reply(ticket, body=body, librarian=librarian, now=now)
    ticket.status = TicketStatus.ANSWERED
    ticket.first_answered_at = ticket.first_answered_at or now
    ticket.closed_at = None
    ticket.in_pool = False
    ticket.at_risk = False
    ticket.is_overdue = False
    ticket.last_activity_at = now
    ticket.save(
        update_fields=[
            "claimed_by",
            "claimed_at",
            "status",
            "first_answered_at",
            "closed_at",
            "in_pool",
            "at_risk",
            "is_overdue",
            "last_activity_at",
        ]
    )
    return message


@transaction.atomic
def add_internal_note(
    *, reference: str, librarian: Librarian, body: str, now: datetime | None = None
) -> TicketMessage:
    now = now or timezone.now()
    body = _clean_body(body)
    ticket = _locked(reference)
    _check_visible(librarian, ticket)
    message = add_message(
        ticket,
        direction=Direction.INTERNAL,
        body=body,
        author=librarian.display_name,
        librarian=librarian,
        now=now,
    )
    Ticket.objects.filter(pk=ticket.pk).update(last_activity_at=now)
    return message


SETTABLE_STATUSES = (TicketStatus.OPEN, TicketStatus.ANSWERED, TicketStatus.CLOSED)


@transaction.atomic
def set_ticket_status(
    *,
    reference: str,
    librarian: Librarian,
    status: str,
    now: datetime | None = None,
) -> Ticket:
    """Open, mark answered (e.g. by phone) or close a ticket; closed ones reopen."""
    now = now or timezone.now()
    if status not in SETTABLE_STATUSES:
        raise ValidationFailed(
            "status: one of open, answered, closed",
            errors={"status": ["one of open, answered, closed"]},
        )
    ticket = _locked(reference)
    _check_visible(librarian, ticket)
    _check_not_claimed_by_other(librarian, ticket)
    ticket.status = status
    ticket.closed_at = now if status == TicketStatus.CLOSED else None
    fields = ["status", "closed_at", "last_activity_at"]
    if status in (TicketStatus.ANSWERED, TicketStatus.CLOSED):
        ticket.in_pool = False
        fields.append("in_pool")
    if status == TicketStatus.ANSWERED and ticket.first_answered_at is None:
        ticket.first_answered_at = now
        ticket.at_risk = ticket.is_overdue = False
        fields += ["first_answered_at", "at_risk", "is_overdue"]
    ticket.last_activity_at = now
    ticket.save(update_fields=fields)
    add_message(
        ticket,
        direction=Direction.INTERNAL,
        body=f"Status set to {status}.",
        author=librarian.display_name,
        librarian=librarian,
        now=now,
    )
    return ticket


def reopen_on_patron_reply(ticket: Ticket, *, now: datetime) -> bool:
    """A patron's reply puts an answered or closed ticket back in the queue."""
    return bool(
        Ticket.objects.filter(
            pk=ticket.pk, status__in=[TicketStatus.ANSWERED, TicketStatus.CLOSED]
        ).update(status=TicketStatus.OPEN, closed_at=None, last_activity_at=now)
    )


# The SLA sweep
# ----------------------------------------------------------------------
def sweep_ticket_sla(*, now: datetime | None = None) -> dict[str, int]:
    """Flag unanswered tickets at risk and overdue; pool unclaimed ones past the share.

    Each step is one conditional update on the stored deadlines, so a sweep
    run twice, or by two workers at once, changes each ticket once.
    """
    now = now or timezone.now()
    unanswered = Ticket.objects.filter(
        status__in=selectors.UNANSWERED, first_answered_at__isnull=True
    )
    counts = {
        "pooled": unanswered.filter(
            in_pool=False, claimed_by__isnull=True, pool_at__lte=now
        ).update(in_pool=True, pooled_at=now),
        "at_risk": unanswered.filter(at_risk=False, risk_at__lte=now).update(
            at_risk=True
        ),
        "overdue": unanswered.filter(is_overdue=False, due_by__lte=now).update(
            is_overdue=True, at_risk=True
        ),
    }
    if any(counts.values()):
        logger.info("ticket SLA sweep: %s", counts)
    return counts
