"""Reads for the desk: canned responses with placeholders filled, suggestions,
and which chats and tickets a librarian may draw on.

Search itself lives in `faq.search`; this module reads conversations and
tickets through their apps' selectors only.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from chat import selectors as chat_selectors
from chat.models import Conversation
from faq import canned, search
from faq.models import CannedResponse, CannedScope
from libraries import hours, local_info_search
from libraries.models import Librarian, Library
from libraries.rendering import render_markdown
from libraries.selectors import library_hours
from refdesk.errors import Forbidden

MAX_CANNED = 50


# Who may see what
# ----------------------------------------------------------------------
def conversation_visible_to(librarian: Librarian, conversation: Conversation) -> bool:
    """The accepting librarian, desks it is offered to, and its libraries' staff.

    Consortium admins see every conversation.
    """
    if librarian.is_consortium_admin:
        return True
    if librarian.library_id is None:
        return False
    if conversation.librarian_id == librarian.pk:
        return True
    mine = librarian.library_id
    if mine in (conversation.origin_library_id, conversation.answering_library_id):
        return True
    return mine in chat_selectors.eligible_library_ids(conversation)


def get_visible_conversation(
    *, conversation_id: UUID, librarian: Librarian
) -> Conversation:
    """The conversation, or NotFound, or Forbidden when the librarian may not see it."""
    conversation = chat_selectors.get_conversation(conversation_id)
    if not conversation_visible_to(librarian, conversation):
        raise Forbidden("this conversation belongs to another library")
    return conversation


def get_visible_ticket(*, reference: str, librarian: Librarian):
    from tickets import selectors as ticket_selectors

    ticket = ticket_selectors.get_ticket(reference)
    if not ticket_selectors.can_see(librarian, ticket):
        raise Forbidden("this ticket belongs to another library")
    return ticket


# Canned responses
# ----------------------------------------------------------------------
@dataclass(frozen=True)
class FillContext:
    """What the placeholders of one conversation or ticket are filled from."""

    library: Library | None
    patron_name: str
    librarian_name: str


def canned_responses_for(
    *, librarian: Librarian, q: str = ""
) -> QuerySet[CannedResponse]:
    """The consortium's, the librarian's library's and their own responses whose
    shortcut or title starts with `q`, exact shortcut first, then the most
    specific scope (personal, library, consortium)."""
    visible = Q(scope=CannedScope.CONSORTIUM) | Q(
        scope=CannedScope.PERSONAL, owner=librarian
    )
    if librarian.library_id is not None:
        visible |= Q(scope=CannedScope.LIBRARY, library_id=librarian.library_id)
    responses = CannedResponse.objects.filter(visible)
    prefix = q.strip().lstrip("/").strip()
    if prefix:
        responses = responses.filter(
            Q(shortcut__istartswith=prefix)
            | Q(title__istartswith=prefix)
            | Q(title__icontains=f" {prefix}")
        )
    return responses.annotate(
        exact=Case(
            When(shortcut__iexact=prefix, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        ),
        specificity=Case(
            When(scope=CannedScope.PERSONAL, then=Value(0)),
            When(scope=CannedScope.LIBRARY, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        ),
    ).order_by("exact", "shortcut", "specificity", "id")[:MAX_CANNED]


def hours_today_text(library: Library, *, now: datetime) -> str:
    """Today's hours of a library, in its own time zone, in words."""
    today = now.astimezone(ZoneInfo(library.timezone)).date()
    spans = hours.hours_on(library_hours(library), today)
    return canned.describe_hours(
        [canned.Span(s.opens, s.closes) for s in spans], always_open=library.always_open
    )


def placeholder_values(context: FillContext, *, now: datetime) -> dict[str, str]:
    library = context.library
    return canned.placeholder_values(
        patron_name=context.patron_name,
        library_name=library.name if library else "",
        library_website=library.website if library else "",
        librarian_name=context.librarian_name,
        hours_today=hours_today_text(library, now=now) if library else "",
    )


def conversation_fill_context(
    conversation: Conversation, librarian: Librarian
) -> FillContext:
    return FillContext(
        library=_with_calendar(conversation.origin_library_id),
        patron_name=conversation.patron_name,
        librarian_name=librarian.display_name,
    )


def ticket_fill_context(ticket, librarian: Librarian) -> FillContext:
    return FillContext(
        library=_with_calendar(ticket.library_id),
        patron_name=ticket.patron_name,
        librarian_name=librarian.display_name,
    )


def _with_calendar(library_id: int) -> Library:
    return Library.objects.prefetch_related(
        "weekly_hours", "special_hours", "closures"
    ).get(pk=library_id)


def canned_payload(
    responses: list[CannedResponse], values: dict[str, str] | None
) -> list[dict]:
    """Responses in the API shape; `body_filled` is null without a conversation."""
    return [
        {
            "id": r.pk,
            "shortcut": r.shortcut,
            "title": r.title,
            "scope": r.scope,
            "body": r.body,
            "body_filled": canned.fill_placeholders(r.body, values) if values else None,
        }
        for r in responses
    ]


# Suggestions beside a chat
# ----------------------------------------------------------------------
def suggestions_for(conversation: Conversation, *, limit: int = 5) -> dict:
    """FAQ answers (public and staff, the patron's library first) and local info
    sections of the patron's library that match the patron's question."""
    question = _first_patron_message(conversation.pk)
    library = conversation.origin_library
    answers = search.search_answers(
        q=question, library=library, audience="staff", limit=limit
    )
    sections = local_info_search.search_local_info(
        q=question, library_ids=[library.pk], limit=limit
    )
    return {
        "conversation": str(conversation.pk),
        "library": {"slug": library.slug, "name": library.name},
        "question": question,
        "faq": [
            {
                "id": a.pk,
                "question": a.question,
                "answer": a.answer,
                "answer_html": str(render_markdown(a.answer)),
                "is_public": a.is_public,
                "library": a.library.slug if a.library_id else None,
                "url": answer_path(library.slug, a.pk) if a.is_public else None,
            }
            for a in answers
        ],
        "local_info": [hit.as_dict() for hit in sections],
    }


def _first_patron_message(conversation_id: UUID) -> str:
    for message in chat_selectors.messages_after(conversation_id, 0):
        if message["sender"] == "patron":
            return message["body"]
    return ""


def answer_path(slug: str, answer_id: int) -> str:
    from django.urls import reverse

    return reverse("faq:answer", args=[slug, answer_id])
