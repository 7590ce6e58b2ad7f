"""Reads about tickets: lookups, what a librarian may see, queues and threads."""

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from libraries.models import Librarian, Library, Role
from libraries.selectors import library_hours
from tickets import sla
from tickets.exceptions import TicketNotFound
from tickets.models import (
    Attachment,
    InboundEmail,
    Ticket,
    TicketMessage,
    TicketStatus,
)

QUEUE_VIEWS = ("mine", "library", "pool", "at_risk", "overdue", "closed", "all")
UNANSWERED = (TicketStatus.NEW, TicketStatus.OPEN)


def get_ticket(reference: str) -> Ticket:
    try:
        return Ticket.objects.select_related(
            "library", "claimed_by", "claimed_by__library"
        ).get(reference=reference.upper())
    except Ticket.DoesNotExist:
        raise TicketNotFound(f"no ticket {reference!r}") from None


def ticket_with_thread(reference: str) -> Ticket:
    """A ticket with its messages and their attachments (without the bytes)."""
    try:
        return (
            Ticket.objects.select_related("library", "claimed_by", "conversation")
            .prefetch_related(
                Prefetch(
                    "messages",
                    queryset=TicketMessage.objects.select_related("librarian")
                    .prefetch_related(
                        Prefetch(
                            "attachments", queryset=Attachment.objects.defer("data")
                        )
                    )
                    .order_by("created_at", "id"),
                )
            )
            .get(reference=reference.upper())
        )
    except Ticket.DoesNotExist:
        raise TicketNotFound(f"no ticket {reference!r}") from None


def get_attachment(*, reference: str, attachment_id: int) -> Attachment:
    try:
        return Attachment.objects.select_related("message__ticket").get(
            pk=attachment_id, message__ticket__reference=reference.upper()
        )
    except Attachment.DoesNotExist:
        raise TicketNotFound("no such attachment") from None


def ticket_for_conversation(conversation_id) -> Ticket | None:
    return Ticket.objects.filter(conversation_id=conversation_id).first()


def sees_everything(librarian: Librarian) -> bool:
    return librarian.role == Role.CONSORTIUM_ADMIN or librarian.library_id is None


def visible_condition(librarian: Librarian) -> Q:
    """Tickets of the librarian's library, the shared pool and their own claims."""
    if sees_everything(librarian):
        return Q()
    return (
        Q(library_id=librarian.library_id)
        | Q(in_pool=True)
        | Q(claimed_by_id=librarian.pk)
    )


def can_see(librarian: Librarian, ticket: Ticket) -> bool:
    return (
        sees_everything(librarian)
        or ticket.library_id == librarian.library_id
        or ticket.in_pool
        or ticket.claimed_by_id == librarian.pk
    )


def may_manage(librarian: Librarian, ticket: Ticket) -> bool:
    """May release another librarian's claim or change the ticket regardless of it."""
    if sees_everything(librarian):
        return True
    return (
        librarian.role == Role.LIBRARY_ADMIN
        and librarian.library_id == ticket.library_id
    )


def visible_tickets(librarian: Librarian) -> QuerySet[Ticket]:
    return Ticket.objects.filter(visible_condition(librarian)).select_related(
        "library", "claimed_by"
    )


def ticket_queue(
    librarian: Librarian, *, view: str = "library", now: datetime
) -> QuerySet[Ticket]:
    """One view of the librarian's ticket queue, the most urgent first."""
    tickets = visible_tickets(librarian)
    unanswered = Q(status__in=UNANSWERED)
    match view:
        case "mine":
            tickets = tickets.filter(claimed_by=librarian).exclude(
                status=TicketStatus.CLOSED
            )
        case "pool":
            tickets = tickets.filter(unanswered, in_pool=True)
        case "at_risk":
            tickets = tickets.filter(unanswered, risk_at__lte=now, due_by__gt=now)
        case "overdue":
            tickets = tickets.filter(unanswered, due_by__lte=now)
        case "closed":
            tickets = tickets.filter(status=TicketStatus.CLOSED).order_by("-closed_at")
            return tickets[:200]
        case "all":
            pass
        case _:
            if not sees_everything(librarian):
                tickets = tickets.filter(library_id=librarian.library_id)
            tickets = tickets.exclude(status=TicketStatus.CLOSED)
    return tickets.order_by("status", "due_by", "id")[:500]


def queue_counts(librarian: Librarian, *, now: datetime) -> dict[str, int]:
    """How many tickets each view holds, for the filter tabs."""
    return {
        view: ticket_queue(librarian, view=view, now=now).count()
        for view in ("mine", "library", "pool", "at_risk", "overdue")
    }


def tickets_for_api(
    librarian: Librarian,
    *,
    status: str = "",
    library: str = "",
    pool: bool = False,
    limit: int = 200,
) -> list[Ticket]:
    tickets = visible_tickets(librarian)
    if status:
        tickets = tickets.filter(status=status)
    if library:
        tickets = tickets.filter(library__slug=library)
    if pool:
        tickets = tickets.filter(in_pool=True)
    return list(tickets.order_by("due_by", "id")[:limit])


def ticket_by_message_ids(message_ids: Sequence[str]) -> Ticket | None:
    """The ticket of the first of `message_ids` (most specific first) that is stored."""
    if not message_ids:
        return None
    rows = dict(
        TicketMessage.objects.filter(message_id__in=list(message_ids)).values_list(
            "message_id", "ticket_id"
        )
    )
    for message_id in message_ids:
        if message_id in rows:
            return Ticket.objects.filter(pk=rows[message_id]).first()
    return None


def thread_ids(ticket_id: int) -> list[str]:
    """Message-IDs of the ticket's mail (not internal notes), oldest first."""
    return list(
        TicketMessage.objects.filter(ticket_id=ticket_id)
        .exclude(direction="internal")
        .exclude(message_id="")
        .order_by("created_at", "id")
        .values_list("message_id", flat=True)
    )


def last_patron_message_id(ticket_id: int) -> str:
    return (
        TicketMessage.objects.filter(
            ticket_id=ticket_id, direction="inbound", is_auto_reply=False
        )
        .exclude(message_id="")
        .order_by("-created_at", "-id")
        .values_list("message_id", flat=True)
        .first()
        or ""
    )


def recent_confirmations_to(address: str, *, since: datetime) -> int:
    return TicketMessage.objects.filter(
        kind="confirmation", to_address__iexact=address, created_at__gte=since
    ).count()


def inbound_needing_attention() -> QuerySet[InboundEmail]:
    return InboundEmail.objects.filter(status="needs_attention").order_by("received_at")


def sla_deadlines(library: Library, *, now: datetime) -> sla.SlaDeadlines:
    """The pool, at-risk and due moments of a ticket `library` receives at `now`,
    counted on its opening hours (calendar time when it is always open)."""
    hours = None if library.always_open else library_hours(library)
    return sla.deadlines(
        created_at=now,
        sla=settings.REFDESK_TICKET_SLA,
        hours=hours,
        pool_share=settings.REFDESK_TICKET_POOL_SHARE,
        risk_share=settings.REFDESK_TICKET_RISK_SHARE,
    )


def answer_due_for(library: Library, *, now: datetime) -> datetime:
    """When a question left with `library` now is promised an answer by."""
    return sla_deadlines(library, now=now).due_by
