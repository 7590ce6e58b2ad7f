"""Outgoing mail: bodies rendered from the library-branded templates, and the
`EmailMultiAlternatives` with the threading headers, built from a stored message.

Addresses at `REFDESK_MAIL_DOMAIN`:
- `{library slug}@domain` is each library's address: the `From` of its mail,
  and where new questions by email arrive (see `services.inbound`);
- `reply+TOKEN@domain` is the per-ticket `Reply-To` (see `tickets.tokens`).
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from tickets import tokens
from tickets.mail.parsing import BOUNCE_LOCALS, NO_REPLY_LOCALS

_DEFAULT_BRAND = "#1f4e79"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_REFERENCES = 20


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def new_message_id(prefix: str = "") -> str:
    """A unique Message-ID at the mail domain, short enough not to be folded."""
    local = f"{prefix}.{secrets.token_hex(8)}" if prefix else secrets.token_hex(12)
    return f"<{local}@{settings.REFDESK_MAIL_DOMAIN}>"


def library_address(library) -> str:
    return f"{library.slug}@{settings.REFDESK_MAIL_DOMAIN}"


def from_header(library) -> str:
    return formataddr((library.name, library_address(library)))


def may_send_to(address: str) -> bool:
    """Never mail ourselves, mailer daemons or no-reply addresses: no loops."""
    local, _, domain = address.strip().rpartition("@")
    if not local or not domain:
        return False
    if domain.lower() == settings.REFDESK_MAIL_DOMAIN.lower():
        return False
    return local.lower() not in BOUNCE_LOCALS | NO_REPLY_LOCALS


def format_due(due_by: datetime, timezone: str) -> str:
    """The due time in the library's zone: "Tuesday 10 March 2026, 10:00 CDT"."""
    local = due_by.astimezone(ZoneInfo(timezone))
    return f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M} {local.tzname()}"


def brand_colors(color: str) -> tuple[str, str]:
    """The library's colour and white or near-black text on it, whichever reads."""
    if not _COLOR.match(color or ""):
        color = _DEFAULT_BRAND

    def channel(pair: str) -> float:
        c = int(pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return color, "#ffffff" if 1.05 / (luminance + 0.05) >= 4.5 else "#111111"


def _subject(ticket, *, prefix: str = "Re: ") -> str:
    base = re.sub(r"^\s*((re|fwd?|aw|sv|wg)\s*:\s*)+", "", ticket.subject, flags=re.I)
    base = base.replace(f"[{ticket.reference}]", "").strip() or "Your question"
    return f"{prefix}{base} [{ticket.reference}]"


def _context(library, *, reference: str, patron_name: str, **extra) -> dict:
    brand, brand_text = brand_colors(library.brand_color)
    return {
        "consortium_name": settings.REFDESK_CONSORTIUM_NAME,
        "library": library,
        "reference": reference,
        "patron_name": patron_name,
        "brand_color": brand,
        "brand_text_color": brand_text,
        **extra,
    }


def _ticket_context(ticket, **extra) -> dict:
    return _context(
        ticket.library,
        reference=ticket.reference,
        patron_name=ticket.patron_name,
        ticket=ticket,
        **extra,
    )


def _render(name: str, context: dict, subject: str) -> Rendered:
    return Rendered(
        subject=subject,
        text=render_to_string(f"tickets/email/{name}.txt", context).strip() + "\n",
        html=render_to_string(f"tickets/email/{name}.html", context),
    )


def render_confirmation(ticket, *, question: str) -> Rendered:
    """The automatic confirmation: the reference and the concrete due time."""
    context = _ticket_context(
        ticket,
        question=question,
        due_text=format_due(ticket.due_by, ticket.library.timezone),
    )
    return _render("confirmation", context, _subject(ticket, prefix=""))


def render_reply(ticket, *, body: str, librarian_name: str) -> Rendered:
    context = _ticket_context(ticket, body=body, librarian_name=librarian_name)
    return _render("reply", context, _subject(ticket))


def render_transcript(
    library, *, transcript: str, reference: str = "", patron_name: str = ""
) -> Rendered:
    context = _context(
        library, reference=reference, patron_name=patron_name, transcript=transcript
    )
    suffix = f" [{reference}]" if reference else ""
    return _render("transcript", context, f"Your chat transcript{suffix}")


def build_chat_transcript_email(
    conversation, *, to_address: str, transcript: str
) -> EmailMultiAlternatives:
    """The transcript of a chat without a ticket; replies go to the library's address."""
    library = conversation.origin_library
    rendered = render_transcript(
        library, transcript=transcript, patron_name=conversation.patron_name
    )
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_header(library),
        to=[to_address],
        reply_to=[library_address(library)],
        headers={
            "Message-ID": new_message_id(f"chat.{conversation.pk}"),
            "Auto-Submitted": "auto-generated",
            "X-Auto-Response-Suppress": "All",
        },
    )
    email.attach_alternative(rendered.html, "text/html")
    return email


def references_header(ids: list[str]) -> str:
    """References: the thread's first id and its latest ones (RFC 5322 3.6.4)."""
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return " ".join(ids)


def build_email(message) -> EmailMultiAlternatives:
    """The wire form of a stored outbound `TicketMessage` (ticket and library loaded)."""
    ticket = message.ticket
    headers = {
        "Message-ID": message.message_id,
        "X-Refdesk-Ticket": ticket.reference,
    }
    if message.in_reply_to:
        headers["In-Reply-To"] = message.in_reply_to
    if message.references:
        headers["References"] = message.references
    if message.kind == "confirmation":
        headers["Auto-Submitted"] = "auto-replied"
        headers["X-Auto-Response-Suppress"] = "All"
    elif message.kind == "transcript":
        headers["Auto-Submitted"] = "auto-generated"
        headers["X-Auto-Response-Suppress"] = "All"
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.full_body or message.body,
        from_email=from_header(ticket.library),
        to=[message.to_address],
        reply_to=[tokens.reply_address(ticket.pk)],
        headers=headers,
    )
    if message.html_body:
        email.attach_alternative(message.html_body, "text/html")
    return email
