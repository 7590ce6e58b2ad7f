"""The librarians' work on tickets: claim, release, reply, notes, status; a
patron's reply reopening a ticket; the SLA sweep."""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from libraries.models import Librarian
from tickets import selectors
from tickets.exceptions import (
    AlreadyTaken,
    Forbidden,
    NotYours,
    StateConflict,
    ValidationFailed,
)
from tickets.models import Direction, Ticket, TicketMessage, TicketStatus
from tickets.services import outbound
from tickets.services.creation import add_message

logger = logging.getLogger(__name__)

MAX_BODY_CHARS = 20_000


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
        raise ValidationFailed(
            "body: this field is required", errors={"body": ["required"]}
        )
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
    scope = (
        Q()
        if selectors.sees_everything(librarian)
        else (Q(library_id=librarian.library_id) | Q(in_pool=True))
    )
    won = (
        Ticket.objects.filter(
            scope, reference=reference.upper(), claimed_by__isnull=True
        )
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
