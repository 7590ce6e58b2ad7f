"""FAQ endpoints of the JSON API: patron search, opens and self-service, and the
desk's canned responses, suggestions and drafts (Django session).
"""

from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from chat import selectors as chat_selectors
from chat import services as chat_services
from faq import search, selectors, services
from faq.models import Answer
from libraries import cors
from libraries.api import limit_param, query_text, session_librarian
from libraries.rendering import render_markdown
from libraries.selectors import get_library
from refdesk.api import bearer_token, json_api, json_body, rate_limit
from refdesk.errors import ValidationFailed


def _optional_body(request: HttpRequest) -> dict:
    """The JSON body, or {} when the request has none."""
    if request.META.get("CONTENT_LENGTH", "") in ("", "0"):
        return {}
    return json_body(request)


def _integer(data: dict, name: str, *, required: bool) -> int | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed(
            f"{name}: an answer id (a positive whole number)",
            errors={name: ["a positive whole number"]},
        )
    return value


def answer_url(request: HttpRequest, slug: str, answer_id: int) -> str:
    """The stable public page of an answer on a library's FAQ, as an absolute URL
    (widgets run on the library's own site)."""
    return request.build_absolute_uri(reverse("faq:answer", args=[slug, answer_id]))


def public_answer(request: HttpRequest, answer: Answer, slug: str) -> dict:
    return {
        "id": answer.pk,
        "question": answer.question,
        "answer": answer.answer,
        "answer_html": str(render_markdown(answer.answer)),
        "url": answer_url(request, slug, answer.pk),
        "library": answer.library.slug if answer.library_id else None,
    }


# Patron API (no login)
# ----------------------------------------------------------------------
@json_api(methods=("GET",), origins=cors.library_origins)
def library_faq(request: HttpRequest, slug: str):
    """Public answers of the library and the consortium matching `q`, best first;
    with no `q`, the answers its patrons found most useful."""
    rate_limit(request, scope="faq", per_minute=settings.REFDESK_FAQ_RATE_PER_MINUTE)
    library = get_library(slug=slug)
    q = query_text(request)
    limit = limit_param(request, default=5, maximum=search.MAX_LIMIT)
    if q:
        answers = search.search_answers(
            q=q, library=library, audience="public", limit=limit
        )
    else:
        answers = search.popular_answers(library=library, limit=limit)
    return {"results": [public_answer(request, a, slug) for a in answers]}


@json_api(methods=("POST",), origins=cors.member_origins)
def answer_opened(request: HttpRequest, answer_id: int):
    rate_limit(
        request, scope="faq-open", per_minute=settings.REFDESK_FAQ_RATE_PER_MINUTE
    )
    search.get_published_public_answer(answer_id)
    services.count_answer_opened(answer_id=answer_id)
    return {"id": answer_id, "counted": True}


@json_api(methods=("POST",), origins=cors.member_origins)
def self_served(request: HttpRequest, conversation_id: UUID):
    """End a waiting chat as self-served: "this answered my question"."""
    chat_services.check_patron_token(
        conversation_id=conversation_id, token=bearer_token(request)
    )
    answer_id = _integer(_optional_body(request), "answer", required=False)
    conversation = chat_selectors.get_conversation(conversation_id)
    if answer_id is not None:
        search.get_public_answer(
            answer_id=answer_id, library=conversation.origin_library
        )
    conversation = chat_services.close_as_self_served(
        conversation_id=conversation_id, answer_id=answer_id
    )
    return {
        "id": str(conversation.pk),
        "status": conversation.status,
        "outcome": conversation.outcome,
    }


# Desk API (Django session; librarians only)
# ----------------------------------------------------------------------
def _uuid(value: str, name: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ValidationFailed(
            f"{name}: not a conversation id", errors={name: ["not a conversation id"]}
        ) from None


@json_api(methods=("GET", "POST"))
def canned_responses(request: HttpRequest):
    """GET: the responses this librarian may insert, filled for a conversation or
    ticket. POST: create one of the librarian's own (personal) responses."""
    librarian = session_librarian(request)
    if request.method == "POST":
        data = json_body(request)
        fields = {}
        for name in ("shortcut", "title", "body"):
            value = data.get(name, "")
            if not isinstance(value, str):
                raise ValidationFailed(
                    f"{name}: must be a string", errors={name: ["must be a string"]}
                )
            fields[name] = value
        response = services.create_personal_canned_response(
            librarian=librarian, **fields
        )
        return 201, selectors.canned_payload([response], None)[0]
    conversation_id = request.GET.get("conversation", "")
    reference = request.GET.get("ticket", "")
    context = None
    if conversation_id:
        conversation = selectors.get_visible_conversation(
            conversation_id=_uuid(conversation_id, "conversation"), librarian=librarian
        )
        context = selectors.conversation_fill_context(conversation, librarian)
    elif reference:
        ticket = selectors.get_visible_ticket(reference=reference, librarian=librarian)
        context = selectors.ticket_fill_context(ticket, librarian)
    responses = list(
        selectors.canned_responses_for(librarian=librarian, q=query_text(request))
    )
    values = (
        selectors.placeholder_values(context, now=timezone.now()) if context else None
    )
    return {"results": selectors.canned_payload(responses, values)}


@json_api(methods=("DELETE",))
def canned_response(request: HttpRequest, response_id: int):
    librarian = session_librarian(request)
    services.delete_personal_canned_response(
        response_id=response_id, librarian=librarian
    )
    return 200, {"id": response_id, "deleted": True}


@json_api(methods=("GET",))
def suggestions(request: HttpRequest):
    librarian = session_librarian(request)
    conversation_id = query_text(request, "conversation", required=True)
    conversation = selectors.get_visible_conversation(
        conversation_id=_uuid(conversation_id, "conversation"), librarian=librarian
    )
    return selectors.suggestions_for(conversation)


@json_api(methods=("POST",))
def create_draft(request: HttpRequest):
    librarian = session_librarian(request)
    data = json_body(request)
    conversation, reference = data.get("conversation"), data.get("ticket")
    if isinstance(conversation, str) and conversation:
        draft = services.draft_answer_from_conversation(
            conversation_id=_uuid(conversation, "conversation"), librarian=librarian
        )
    elif isinstance(reference, str) and reference:
        draft = services.draft_answer_from_ticket(
            reference=reference, librarian=librarian
        )
    else:
        raise ValidationFailed(
            "conversation: give a conversation id or a ticket reference",
            errors={"conversation": ["give a conversation id or a ticket reference"]},
        )
    return 201, {
        "id": draft.pk,
        "question": draft.question,
        "answer": draft.answer,
        "library": draft.library.slug if draft.library_id else None,
        "is_published": draft.is_published,
        "is_public": draft.is_public,
        "admin_url": reverse("admin:faq_answer_change", args=[draft.pk]),
    }
