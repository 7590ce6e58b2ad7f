"""Outgoing mail: stored as outbound messages, then sent once after the commit.

Loop protection: automatic mail (the confirmation) goes only to a person's
address (never our own domain, a mailer daemon or a no-reply address), at
most three times a day to one address, and never in answer to an auto-reply,
bulk mail or a bounce (the inbound service does not ask for one then).
"""

import logging
import smtplib
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from libraries.models import Librarian
from tickets import selectors, tasks
from tickets.mail import outgoing
from tickets.models import Direction, OutboundKind, Ticket, TicketMessage

logger = logging.getLogger(__name__)

SEND_LEASE = timedelta(minutes=10)
AUTO_REPLIES_PER_DAY = 3


def new_message_id(prefix: str = "") -> str:
    return outgoing.new_message_id(prefix)


def _queue(
    ticket: Ticket,
    *,
    kind: str,
    rendered: outgoing.Rendered,
    body: str,
    now: datetime,
    librarian: Librarian | None = None,
    to_address: str = "",
) -> TicketMessage:
    """Store an outbound message threaded on the ticket; send it after the commit."""
    ids = selectors.thread_ids(ticket.pk)
    in_reply_to = selectors.last_patron_message_id(ticket.pk) or (
        ids[-1] if ids else ""
    )
    message = TicketMessage.objects.create(
        ticket=ticket,
        direction=Direction.OUTBOUND,
        kind=kind,
        author=librarian.display_name if librarian else ticket.library.name,
        librarian=librarian,
        from_address=outgoing.library_address(ticket.library),
        to_address=to_address or ticket.patron_email,
        subject=rendered.subject,
        body=body,
        full_body=rendered.text,
        html_body=rendered.html,
        message_id=new_message_id(f"{ticket.reference}.out"),
        in_reply_to=in_reply_to,
        references=outgoing.references_header(ids),
        created_at=now,
    )
    tasks.send_ticket_email.delay_on_commit(message.pk)
    return message


def may_auto_reply(address: str, *, now: datetime) -> bool:
    if not address or not outgoing.may_send_to(address):
        return False
    since = now - timedelta(days=1)
    return (
        selectors.recent_confirmations_to(address, since=since) < AUTO_REPLIES_PER_DAY
    )


def queue_confirmation(
    ticket: Ticket, *, question: str, now: datetime
) -> TicketMessage | None:
    """The automatic confirmation with the reference and the due time, if allowed."""
    if not may_auto_reply(ticket.patron_email, now=now):
        logger.info("ticket %s: no automatic confirmation (loop guard)", ticket.pk)
        return None
    rendered = outgoing.render_confirmation(ticket, question=question)
    due = outgoing.format_due(ticket.due_by, ticket.library.timezone)
    return _queue(
        ticket,
        kind=OutboundKind.CONFIRMATION,
        rendered=rendered,
        body=f"Confirmation sent: reference {ticket.reference}, answer due by {due}.",
        now=now,
    )


def queue_reply(
    ticket: Ticket, *, body: str, librarian: Librarian, now: datetime
) -> TicketMessage:
    rendered = outgoing.render_reply(
        ticket, body=body, librarian_name=librarian.display_name
    )
    return _queue(
        ticket,
        kind=OutboundKind.REPLY,
        rendered=rendered,
        body=body,
        librarian=librarian,
        now=now,
    )


def queue_transcript(
    ticket: Ticket, *, transcript: str, to_address: str, now: datetime
) -> TicketMessage | None:
    if not outgoing.may_send_to(to_address):
        return None
    rendered = outgoing.render_transcript(
        ticket.library,
        transcript=transcript,
        reference=ticket.reference,
        patron_name=ticket.patron_name,
    )
    return _queue(
        ticket,
        kind=OutboundKind.TRANSCRIPT,
        rendered=rendered,
        body="Chat transcript sent to the patron.",
        to_address=to_address,
        now=now,
    )


def deliver_ticket_message(*, message_id: int, now: datetime | None = None) -> bool:
    """Send one stored outbound message once; True when this call sent it.

    The message is leased with a conditional update (no lock is held during
    SMTP), marked sent after the server accepted it, and released for the
    next retry when sending fails. A crash between the two leaves a lease
    that expires after `SEND_LEASE`.
    """
    now = now or timezone.now()
    leased = (
        TicketMessage.objects.filter(
            pk=message_id, direction=Direction.OUTBOUND, sent_at__isnull=True
        )
        .filter(Q(sending_since__isnull=True) | Q(sending_since__lt=now - SEND_LEASE))
        .update(sending_since=now, send_attempts=F("send_attempts") + 1)
    )
    if not leased:
        return False
    message = TicketMessage.objects.select_related("ticket__library").get(pk=message_id)
    if not outgoing.may_send_to(message.to_address):
        TicketMessage.objects.filter(pk=message_id).update(
            sending_since=None, send_error="not sent: not a patron's address"
        )
        return False
    try:
        outgoing.build_email(message).send(using="default")
    except smtplib.SMTPException as error:
        if not _is_permanent(error):
            _release(message_id, error)
            raise
        TicketMessage.objects.filter(pk=message_id).update(
            sending_since=None, send_error=f"not sent: refused: {error}"[:500]
        )
        logger.warning("ticket message %s refused permanently", message_id)
        return False
    except Exception as error:
        _release(message_id, error)
        raise
    TicketMessage.objects.filter(pk=message_id).update(
        sent_at=timezone.now(), sending_since=None, send_error=""
    )
    logger.info("ticket message %s sent", message_id)
    return True


def _release(message_id: int, error: Exception) -> None:
    """Give the lease back so that the task's retry can send it."""
    TicketMessage.objects.filter(pk=message_id).update(
        sending_since=None, send_error=f"{type(error).__name__}: {error}"[:500]
    )
    logger.warning(
        "ticket message %s not sent yet: %s", message_id, type(error).__name__
    )


def _is_permanent(error: smtplib.SMTPException) -> bool:
    """A 5xx answer (unknown recipient, refused content) will not change on retry."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return False


@transaction.atomic
def resend_unsent(*, older_than: timedelta = timedelta(minutes=15)) -> int:
    """Queue again outbound messages whose task was lost (e.g. a broker restart)."""
    cutoff = timezone.now() - older_than
    ids = list(
        TicketMessage.objects.filter(
            direction=Direction.OUTBOUND,
            sent_at__isnull=True,
            created_at__lte=cutoff,
            send_attempts__lt=20,
        )
        .filter(Q(sending_since__isnull=True) | Q(sending_since__lt=cutoff))
        .exclude(send_error__startswith="not sent")
        .values_list("pk", flat=True)[:100]
    )
    for pk in ids:
        tasks.send_ticket_email.delay_on_commit(pk)
    return len(ids)


def deliver_chat_transcript(*, conversation_id, to_address: str) -> bool:
    """Send the transcript of a chat that has no ticket (at least once)."""
    from chat import selectors as chat_selectors
    from tickets.services.creation import transcript_text

    if not outgoing.may_send_to(to_address):
        return False
    conversation = chat_selectors.get_conversation(conversation_id)
    transcript = transcript_text(
        conversation, chat_selectors.messages_after(conversation.pk, 0), labelled=True
    )
    outgoing.build_chat_transcript_email(
        conversation, to_address=to_address, transcript=transcript
    ).send(using="default")
    return True
