"""PROTOCOL.md's ticket shapes in code: builders from rows selectors fetched."""

from datetime import datetime

from tickets.models import Ticket, TicketMessage


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def ticket_ref(ticket: Ticket) -> dict:
    """The `ticket` object of the follow-up and questions answers."""
    return {"reference": ticket.reference, "due_by": iso(ticket.due_by)}


def ticket_summary(ticket: Ticket) -> dict:
    return {
        "reference": ticket.reference,
        "library": ticket.library.slug,
        "status": ticket.status,
        "subject": ticket.subject,
        "patron_name": ticket.patron_name,
        "created_at": iso(ticket.created_at),
        "due_by": iso(ticket.due_by),
        "claimed_by": ticket.claimed_by.display_name if ticket.claimed_by else None,
        "in_pool": ticket.in_pool,
        "at_risk": ticket.at_risk,
        "is_overdue": ticket.is_overdue,
    }


def ticket_message(message: TicketMessage) -> dict:
    return {
        "direction": message.direction,
        "author": message.author,
        "body": message.body,
        "created_at": iso(message.created_at),
        "is_auto_reply": message.is_auto_reply,
    }


def ticket_detail(ticket: Ticket) -> dict:
    return {
        **ticket_summary(ticket),
        "patron_email": ticket.patron_email,
        "source": ticket.source,
        "tags": list(ticket.tags),
        "first_answered_at": iso(ticket.first_answered_at),
        "messages": [ticket_message(m) for m in ticket.messages.all()],
    }
