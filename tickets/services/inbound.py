"""Inbound email: store the raw bytes first, then parse, thread and file.

Threading, first match wins:
1. a valid signed reply token in any recipient (`reply+TOKEN@<mail domain>`);
2. In-Reply-To, then References (newest first), then a bounced original's
   Message-ID, against stored Message-IDs;
3. a ticket reference (`RD-YY-NNNNNN`) in the subject (or in a bounced
   original's `X-Refdesk-Ticket`);
4. otherwise a new ticket for the library it was sent to: `{slug}@<mail domain>`
   or the library's own contact address (a forward from the library's mailbox);
5. otherwise it needs attention.

Auto-replies, bulk mail and bounces are recorded on the ticket they thread to
(`is_auto_reply`) but never reopen it, never create a ticket and are never
answered; unmatched, they are ignored (and kept).
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from libraries.models import Library
from tickets import selectors, tokens
from tickets.mail import EmailParseError, ParsedEmail, parse_email
from tickets.models import (
    Attachment,
    Direction,
    InboundEmail,
    InboundStatus,
    Ticket,
    TicketMessage,
    TicketSource,
)
from tickets.services import creation, outbound, work

logger = logging.getLogger(__name__)

MAX_HTML_CHARS = 1_000_000


@transaction.atomic
def store_inbound_email(*, raw: bytes, now: datetime | None = None) -> InboundEmail:
    """Keep the raw message before anything reads it."""
    return InboundEmail.objects.create(
        raw=raw, size=len(raw), received_at=now or timezone.now()
    )


def file_inbound_email(raw: bytes, *, now: datetime | None = None) -> InboundEmail:
    """Store a raw RFC 822 message, then file it; a failure leaves it needing attention."""
    inbound = store_inbound_email(raw=raw, now=now)
    return process_inbound_email(inbound_id=inbound.pk, now=now)


def process_inbound_email(
    *, inbound_id: int, now: datetime | None = None
) -> InboundEmail:
    """File a stored message that is pending or needs attention; idempotent."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            inbound = (
                InboundEmail.objects.select_for_update(no_key=True)
                .filter(
                    pk=inbound_id,
                    status__in=[InboundStatus.PENDING, InboundStatus.NEEDS_ATTENTION],
                )
                .first()
            )
            if inbound is not None:
                _file(inbound, now)
    except Exception as error:
        logger.exception("inbound email %s could not be filed", inbound_id)
        InboundEmail.objects.filter(pk=inbound_id).update(
            status=InboundStatus.NEEDS_ATTENTION,
            error=f"filing failed: {type(error).__name__}: {error}"[:2000],
            attempts=F("attempts") + 1,
            processed_at=now,
        )
    return InboundEmail.objects.get(pk=inbound_id)


def retry_inbound_email(
    *, inbound_id: int, now: datetime | None = None
) -> InboundEmail:
    """File again a message that needs attention (an admin action)."""
    return process_inbound_email(inbound_id=inbound_id, now=now)


def _finish(
    inbound: InboundEmail,
    status: str,
    *,
    now: datetime,
    error: str = "",
    ticket: Ticket | None = None,
    message: TicketMessage | None = None,
    library: Library | None = None,
) -> None:
    inbound.status = status
    inbound.error = error
    inbound.ticket = ticket
    inbound.message = message
    inbound.library = library or (ticket.library if ticket else inbound.library)
    inbound.processed_at = now
    inbound.attempts += 1
    inbound.save()
    logger.info("inbound email %s: %s", inbound.pk, status)


def _file(inbound: InboundEmail, now: datetime) -> None:
    try:
        parsed = parse_email(
            bytes(inbound.raw), mail_domain=settings.REFDESK_MAIL_DOMAIN
        )
    except EmailParseError as error:
        _finish(inbound, InboundStatus.NEEDS_ATTENTION, error=str(error), now=now)
        return
    inbound.message_id_header = parsed.message_id[:255]
    inbound.from_address = parsed.from_address[:255]
    inbound.subject = parsed.subject[:300]

    if parsed.message_id:
        duplicate = (
            TicketMessage.objects.filter(message_id=parsed.message_id)
            .select_related("ticket")
            .first()
        )
        if duplicate is not None:
            _finish(
                inbound,
                InboundStatus.IGNORED,
                error="a copy of a message already filed",
                ticket=duplicate.ticket,
                message=duplicate,
                now=now,
            )
            return
    if _is_our_own(parsed):
        _finish(inbound, InboundStatus.IGNORED, error="sent by refdesk itself", now=now)
        return

    ticket = _thread(parsed)
    if ticket is not None:
        message = _record(ticket, parsed, inbound, now)
        if not parsed.is_auto_reply:
            work.reopen_on_patron_reply(ticket, now=now)
            Ticket.objects.filter(pk=ticket.pk).update(last_activity_at=now)
        _finish(inbound, InboundStatus.FILED, ticket=ticket, message=message, now=now)
        return

    library = _addressed_library(parsed)
    if parsed.is_auto_reply:
        _finish(
            inbound,
            InboundStatus.IGNORED,
            error=f"{parsed.auto_kind.replace('_', ' ')} matching no ticket",
            library=library,
            now=now,
        )
        return
    if library is None:
        _finish(
            inbound,
            InboundStatus.NEEDS_ATTENTION,
            error="matches no ticket and was not sent to a library's address",
            now=now,
        )
        return
    ticket = creation.new_ticket(
        library=library,
        source=TicketSource.EMAIL,
        subject=parsed.subject or creation.subject_from(parsed.visible),
        patron_name=parsed.from_name,
        patron_email=parsed.from_address if "@" in parsed.from_address else "",
        now=now,
    )
    message = _record(ticket, parsed, inbound, now)
    outbound.queue_confirmation(ticket, question=message.body, now=now)
    _finish(inbound, InboundStatus.FILED, ticket=ticket, message=message, now=now)


def _is_our_own(parsed: ParsedEmail) -> bool:
    """Our own mail come back (a forward loop); a bounce from our domain is not."""
    domain = parsed.from_address.rpartition("@")[2].lower()
    return (
        domain == settings.REFDESK_MAIL_DOMAIN.lower()
        and parsed.auto_kind != "bounce"
        and bool(parsed.ticket_headers)
    )


def _thread(parsed: ParsedEmail) -> Ticket | None:
    for token in parsed.reply_tokens:
        ticket_id = tokens.ticket_id_from_token(token)
        if ticket_id is not None:
            ticket = Ticket.objects.filter(pk=ticket_id).first()
            if ticket is not None:
                return ticket
    ticket = selectors.ticket_by_message_ids(parsed.thread_ids)
    if ticket is not None:
        return ticket
    for reference in (*parsed.subject_references, *parsed.ticket_headers):
        ticket = Ticket.objects.filter(reference=reference.upper()).first()
        if ticket is not None:
            return ticket
    return None


def _addressed_library(parsed: ParsedEmail) -> Library | None:
    if parsed.local_parts:
        by_slug = {
            lib.slug.lower(): lib
            for lib in Library.objects.filter(slug__in=list(parsed.local_parts))
        }
        for local in parsed.local_parts:
            if local in by_slug:
                return by_slug[local]
    lowered = [a.lower() for a in parsed.recipients]
    if lowered:
        query = Q()
        for address in lowered:
            query |= Q(contact_email__iexact=address)
        return Library.objects.filter(query).order_by("pk").first()
    return None


def _record(
    ticket: Ticket, parsed: ParsedEmail, inbound: InboundEmail, now: datetime
) -> TicketMessage:
    body, attachments = _attachments(parsed)
    message = creation.add_message(
        ticket,
        direction=Direction.INBOUND,
        body=body,
        full_body=parsed.text,
        html_body=parsed.html[:MAX_HTML_CHARS],
        author=parsed.from_name or parsed.from_address,
        from_address=parsed.from_address if "@" in parsed.from_address else "",
        subject=parsed.subject[:300],
        message_id=parsed.message_id[:255]
        or outbound.new_message_id(f"{ticket.reference}.in{inbound.pk}"),
        in_reply_to=(parsed.in_reply_to[0] if parsed.in_reply_to else "")[:255],
        references=" ".join(parsed.references),
        is_auto_reply=parsed.is_auto_reply,
        now=now,
    )
    for attachment in attachments:
        attachment.message = message
    Attachment.objects.bulk_create(attachments)
    return message


def _attachments(parsed: ParsedEmail) -> tuple[str, list[Attachment]]:
    """Attachment rows, and the visible body with a note for any not kept."""
    limit = settings.REFDESK_TICKET_ATTACHMENT_MAX_BYTES
    rows, notes = [], []
    for item in parsed.attachments:
        dropped = item.size > limit
        rows.append(
            Attachment(
                filename=item.filename,
                content_type=item.content_type[:100],
                size=item.size,
                data=b"" if dropped else item.data,
                is_dropped=dropped,
            )
        )
        if dropped:
            notes.append(
                f"[Attachment {item.filename} ({_size(item.size)}) was not kept: "
                f"over the {_size(limit)} limit.]"
            )
    body = parsed.visible or "(no text)"
    if notes:
        body = body + "\n\n" + "\n".join(notes)
    return body, rows


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB"
    if count >= 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count} bytes"
