"""Creating tickets from every source: the question form, chats (offline,
abandoned, follow-up outcomes, the follow-up API) and, through `services.inbound`,
email. Every outgoing mail is stored as an outbound `TicketMessage` first and sent
by `tasks.send_ticket_email` after the commit (see `services.outbound`).
"""

import logging
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from libraries.models import Librarian, Library
from libraries.selectors import get_library
from tickets import selectors
from tickets.exceptions import StateConflict
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
    number = (
        TicketCounter.objects.filter(year=year).values_list("last", flat=True).get()
    )
    return f"RD-{year:02d}-{number:06d}"


def subject_from(text: str) -> str:
    """A subject from the first non-blank line of a question."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) > SUBJECT_CHARS:
        line = line[: SUBJECT_CHARS - 1].rstrip() + "…"
    return line or "(no subject)"


def new_ticket(
    *,
    library: Library,
    source: str,
    subject: str,
    now: datetime,
    patron_name: str = "",
    patron_email: str = "",
    **fields,
) -> Ticket:
    deadlines = selectors.sla_deadlines(library, now=now)
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
    ticket = new_ticket(
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
        ticket = new_ticket(
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
