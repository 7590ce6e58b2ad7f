"""The librarians' ticket queue and ticket pages, and their form actions.

Pages read through selectors and render; every form posts to one action view
that calls one service and redirects back (CSRF-protected: they ride on the
session).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from libraries.models import Librarian
from libraries.selectors import librarian_for
from refdesk.errors import NotFound, RefdeskError, ValidationFailed
from tickets import forms, selectors, services, sla
from tickets.models import Ticket, TicketStatus

VIEW_LABELS = {
    "mine": "My tickets",
    "library": "My library",
    "pool": "Shared pool",
    "at_risk": "At risk",
    "overdue": "Overdue",
    "closed": "Closed",
}
SLA_BADGES = {
    "on_track": ("On track", "ok"),
    "at_risk": ("At risk", "warn"),
    "overdue": ("Overdue", "danger"),
    "answered": ("First answer sent", "info"),
    "closed": ("Closed", "info"),
}
# Attachments are always downloaded; only these types are labelled as what they are.
SAFE_DOWNLOAD_TYPES = {
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "text/plain",
}


@dataclass(frozen=True)
class SlaBadge:
    state: str
    label: str
    css: str
    due_text: str
    relative: str


def sla_badge(ticket: Ticket, now: datetime) -> SlaBadge:
    state = sla.sla_state(
        now=now,
        risk_at=ticket.risk_at,
        due_by=ticket.due_by,
        answered=ticket.first_answered_at is not None,
        closed=ticket.status == TicketStatus.CLOSED,
    )
    label, css = SLA_BADGES[state]
    local = ticket.due_by.astimezone(ZoneInfo(ticket.library.timezone))
    due_text = f"{local:%a} {local.day} {local:%b}, {local:%H:%M} {local.tzname()}"
    return SlaBadge(state, label, css, due_text, _relative(ticket.due_by - now))


def _relative(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    if minutes < 60:
        amount = f"{minutes} min"
    elif minutes < 48 * 60:
        amount = f"{minutes // 60} h {minutes % 60:02d} min"
    else:
        amount = f"{minutes // (24 * 60)} days"
    return f"due in {amount}" if delta.total_seconds() > 0 else f"{amount} late"


def _librarian(request: HttpRequest) -> Librarian | None:
    librarian = librarian_for(request.user)
    return librarian if librarian is not None and request.user.is_active else None


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "tickets/forbidden.html",
        {"consortium_name": settings.REFDESK_CONSORTIUM_NAME},
        status=403,
    )


@login_required
@require_safe
def ticket_list(request: HttpRequest) -> HttpResponse:
    librarian = _librarian(request)
    if librarian is None:
        return _forbidden(request)
    view = request.GET.get("view", "library")
    if view not in VIEW_LABELS:
        view = "library"
    now = timezone.now()
    tickets = selectors.ticket_queue(librarian, view=view, now=now)
    return render(
        request,
        "tickets/ticket_list.html",
        {
            "consortium_name": settings.REFDESK_CONSORTIUM_NAME,
            "librarian": librarian,
            "view": view,
            "view_label": VIEW_LABELS[view],
            "views": _views(librarian, now),
            "rows": [{"ticket": t, "sla": sla_badge(t, now)} for t in tickets],
        },
    )


def _views(librarian: Librarian, now: datetime) -> list[dict]:
    counts = selectors.queue_counts(librarian, now=now)
    return [
        {"key": key, "label": label, "count": counts.get(key)}
        for key, label in VIEW_LABELS.items()
    ]


def _detail_context(
    request: HttpRequest, librarian: Librarian, ticket: Ticket, **forms_given
) -> dict:
    now = timezone.now()
    claimed_by_other = bool(
        ticket.claimed_by_id
        and ticket.claimed_by_id != librarian.pk
        and not selectors.may_manage(librarian, ticket)
    )
    return {
        "consortium_name": settings.REFDESK_CONSORTIUM_NAME,
        "librarian": librarian,
        "ticket": ticket,
        "thread": list(ticket.messages.all()),
        "sla": sla_badge(ticket, now),
        "claimed_by_me": ticket.claimed_by_id == librarian.pk,
        "claimed_by_other": claimed_by_other,
        "may_reply": bool(ticket.patron_email) and not claimed_by_other,
        "reply_form": forms_given.get("reply_form") or forms.ReplyForm(),
        "note_form": forms_given.get("note_form") or forms.NoteForm(),
        "status_form": forms.StatusForm(
            initial={
                "status": ticket.status
                if ticket.status != TicketStatus.NEW
                else TicketStatus.OPEN
            }
        ),
    }


def _visible_ticket(librarian: Librarian, reference: str) -> Ticket:
    try:
        ticket = selectors.ticket_with_thread(reference)
    except NotFound:
        raise Http404("no such ticket") from None
    if not selectors.can_see(librarian, ticket):
        raise Http404("no such ticket")
    return ticket


@login_required
@require_safe
def ticket_detail(request: HttpRequest, reference: str) -> HttpResponse:
    librarian = _librarian(request)
    if librarian is None:
        return _forbidden(request)
    ticket = _visible_ticket(librarian, reference)
    return render(
        request,
        "tickets/ticket_detail.html",
        _detail_context(request, librarian, ticket),
    )


def _action(request: HttpRequest, reference: str, run, success: str) -> HttpResponse:
    librarian = _librarian(request)
    if librarian is None:
        return _forbidden(request)
    try:
        run(librarian)
    except RefdeskError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, success)
    return redirect("tickets:ticket-detail", reference=reference.upper())


@login_required
@require_POST
def claim(request: HttpRequest, reference: str) -> HttpResponse:
    return _action(
        request,
        reference,
        lambda librarian: services.claim_ticket(
            reference=reference, librarian=librarian
        ),
        "You claimed this ticket.",
    )


@login_required
@require_POST
def release(request: HttpRequest, reference: str) -> HttpResponse:
    return _action(
        request,
        reference,
        lambda librarian: services.release_ticket(
            reference=reference, librarian=librarian
        ),
        "You released this ticket.",
    )


@login_required
@require_POST
def change_status(request: HttpRequest, reference: str) -> HttpResponse:
    form = forms.StatusForm(request.POST)
    status = form.cleaned_data["status"] if form.is_valid() else ""
    return _action(
        request,
        reference,
        lambda librarian: services.set_ticket_status(
            reference=reference, librarian=librarian, status=status
        ),
        f"Status set to {status}.",
    )


def _compose(
    request: HttpRequest, reference: str, *, form_class, field: str, run, success
):
    librarian = _librarian(request)
    if librarian is None:
        return _forbidden(request)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            run(librarian, form.cleaned_data["body"])
        except ValidationFailed as error:
            form.add_error("body", error.detail)
        except RefdeskError as error:
            messages.error(request, error.detail)
            return redirect("tickets:ticket-detail", reference=reference.upper())
        else:
            messages.success(request, success)
            return redirect("tickets:ticket-detail", reference=reference.upper())
    ticket = _visible_ticket(librarian, reference)
    context = _detail_context(request, librarian, ticket, **{field: form})
    return render(request, "tickets/ticket_detail.html", context, status=400)


@login_required
@require_POST
def reply(request: HttpRequest, reference: str) -> HttpResponse:
    return _compose(
        request,
        reference,
        form_class=forms.ReplyForm,
        field="reply_form",
        run=lambda librarian, body: services.reply_to_ticket(
            reference=reference, librarian=librarian, body=body
        ),
        success="Your reply is on its way to the patron.",
    )


@login_required
@require_POST
def note(request: HttpRequest, reference: str) -> HttpResponse:
    return _compose(
        request,
        reference,
        form_class=forms.NoteForm,
        field="note_form",
        run=lambda librarian, body: services.add_internal_note(
            reference=reference, librarian=librarian, body=body
        ),
        success="Note added.",
    )


@login_required
@require_safe
def attachment(
    request: HttpRequest, reference: str, attachment_id: int
) -> HttpResponse:
    librarian = _librarian(request)
    if librarian is None:
        return _forbidden(request)
    try:
        item = selectors.get_attachment(
            reference=reference, attachment_id=attachment_id
        )
    except NotFound:
        raise Http404("no such attachment") from None
    if item.is_dropped or not selectors.can_see(librarian, item.message.ticket):
        raise Http404("no such attachment")
    content_type = (
        item.content_type if item.content_type in SAFE_DOWNLOAD_TYPES else None
    ) or "application/octet-stream"
    response = HttpResponse(bytes(item.data), content_type=content_type)
    response["Content-Disposition"] = _disposition(item.filename)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "") or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
