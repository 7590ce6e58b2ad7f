"""Ticket endpoints of the JSON API (PROTOCOL.md): the patron's follow-up and
question, the staff ticket list and detail, and the inbound mail gateway."""

from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from chat.forms import JsonForm
from chat.services import check_patron_token
from libraries import cors
from libraries.selectors import (
    get_library,
    librarian_for,
)
from refdesk.api import bearer_token, json_api, json_body, rate_limit
from refdesk.errors import (
    Forbidden,
    NotFound,
    TooLarge,
    Unauthenticated,
    ValidationFailed,
)
from tickets import forms, protocol, selectors, services
from tickets.models import TicketStatus


def _cleaned(form_class: type[JsonForm], request: HttpRequest) -> dict:
    return form_class(json_body(request)).cleaned()


# Patron API
# ----------------------------------------------------------------------
@json_api(methods=("POST",), origins=cors.member_origins)
def follow_up(request: HttpRequest, conversation_id: UUID):
    # Credentials before the body: a missing token is 401 whatever was sent.
    check_patron_token(conversation_id=conversation_id, token=bearer_token(request))
    data = _cleaned(forms.FollowUpForm, request)
    ticket, created = services.follow_up_conversation(
        conversation_id=conversation_id,
        token=bearer_token(request),
        email=data["email"],
    )
    return (201 if created else 200), {"ticket": protocol.ticket_ref(ticket)}


@json_api(methods=("POST",), origins=cors.library_origins)
def ask_question(request: HttpRequest, slug: str):
    rate_limit(request, scope="start", per_minute=settings.REFDESK_CHAT_RATE_PER_MINUTE)
    get_library(slug=slug)  # an unknown library is 404 before the body is judged
    data = _cleaned(forms.QuestionForm, request)
    ticket = services.create_ticket_from_question(library_slug=slug, **data)
    return 201, {"ticket": protocol.ticket_ref(ticket)}


@json_api(methods=("POST",), origins=cors.member_origins)
def email_transcript(request: HttpRequest, conversation_id: UUID):
    rate_limit(request, scope="transcript", per_minute=5)
    check_patron_token(conversation_id=conversation_id, token=bearer_token(request))
    data = _cleaned(forms.FollowUpForm, request)
    queued = services.email_transcript(
        conversation_id=conversation_id,
        token=bearer_token(request),
        email=data["email"],
    )
    return 202, {"queued": queued}


# Staff API (Django session)
# ----------------------------------------------------------------------
def _librarian(request: HttpRequest):
    if not request.user.is_authenticated:
        raise Unauthenticated("sign in at /accounts/login/")
    librarian = librarian_for(request.user)
    if librarian is None or not request.user.is_active:
        raise Forbidden("tickets are for librarians")
    return librarian


@json_api(methods=("GET",))
def ticket_list(request: HttpRequest):
    librarian = _librarian(request)
    status = request.GET.get("status", "")
    if status and status not in TicketStatus.values:
        raise ValidationFailed(
            f"status: one of {', '.join(TicketStatus.values)}",
            errors={"status": [f"one of {', '.join(TicketStatus.values)}"]},
        )
    tickets = selectors.tickets_for_api(
        librarian,
        status=status,
        library=request.GET.get("library", ""),
        pool=request.GET.get("pool", "") in {"1", "true", "yes"},
    )
    return {"results": [protocol.ticket_summary(t) for t in tickets]}


@json_api(methods=("GET",))
def ticket_detail(request: HttpRequest, reference: str):
    librarian = _librarian(request)
    ticket = selectors.ticket_with_thread(reference)
    if not selectors.can_see(librarian, ticket):
        raise Forbidden("this ticket belongs to another library and is not in the pool")
    return protocol.ticket_detail(ticket)


# Inbound mail gateway
# ----------------------------------------------------------------------
@json_api(methods=("POST",))
def inbound_email(request: HttpRequest):
    """A mail gateway posts one raw RFC 822 message, authenticated by a shared secret.

    Off (404) while `REFDESK_INBOUND_SECRET` is unset. Answers 201 once the raw
    bytes are stored, whatever filing made of them, so the gateway never
    retries a message that is already kept.
    """
    secret = settings.REFDESK_INBOUND_SECRET
    if not secret:
        raise NotFound("the inbound mail endpoint is not enabled")
    given = bearer_token(request)
    if not given:
        raise Unauthenticated("send Authorization: Bearer <REFDESK_INBOUND_SECRET>")
    if not constant_time_compare(given, secret):
        raise Forbidden("wrong inbound secret")
    raw = _raw_body(request, limit=settings.REFDESK_INBOUND_MAX_BYTES)
    inbound = services.file_inbound_email(raw)
    return 201, {
        "id": inbound.pk,
        "status": inbound.status,
        "ticket": inbound.ticket.reference if inbound.ticket_id else None,
    }


def _raw_body(request: HttpRequest, *, limit: int) -> bytes:
    """The body up to this endpoint's own limit, past the 64 KiB API default."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise TooLarge(f"a message is limited to {limit} bytes")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(f"a message is limited to {limit} bytes")
    if not raw:
        raise ValidationFailed("the body must be one raw RFC 822 message")
    return raw
