"""Every change to FAQ answers and canned responses.

`save_answer` is the only writer of an answer's text, so it keeps the stored
search vector current (PostgreSQL only; on SQLite the vector stays empty and
search falls back to word matching).
"""

import logging
from datetime import datetime
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.search import SearchVector
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.utils import timezone
from django.utils.text import slugify

from faq import scrub
from faq import selectors as faq_selectors
from faq.models import Answer, CannedResponse, CannedScope
from libraries import selectors as library_selectors
from libraries import textsearch
from libraries.models import Librarian
from refdesk.errors import Forbidden, NotFound, StateConflict, ValidationFailed

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 300
MAX_TAGS = 20
MAX_TAG_CHARS = 40


# Answers
# ----------------------------------------------------------------------
def clean_tags(tags) -> list[str]:
    """Tags as a list of unique, trimmed, lower-case strings."""
    if not isinstance(tags, list | tuple):
        tags = str(tags or "").split(",")
    cleaned = [" ".join(str(t).split()).lower()[:MAX_TAG_CHARS] for t in tags]
    return list(dict.fromkeys(t for t in cleaned if t))[:MAX_TAGS]


def _update_search_vector(answer: Answer) -> None:
    """question A, tags B, answer C; hyphenated words also indexed joined up."""
    if not textsearch.is_postgresql():
        return
    config = textsearch.CONFIG
    tags = " ".join(answer.tags)
    joined = textsearch.joined_variants

    def vector(text: str, weight: str) -> SearchVector:
        return SearchVector(Value(text), weight=weight, config=config)

    Answer.objects.filter(pk=answer.pk).update(
        search_vector=vector(f"{answer.question} {joined(answer.question)}", "A")
        + vector(f"{tags} {joined(tags)}", "B")
        + vector(f"{answer.answer} {joined(answer.answer)}", "C")
    )


@transaction.atomic
def save_answer(
    *, answer: Answer, user: AbstractBaseUser | None = None, now: datetime | None = None
) -> Answer:
    """Store a new or edited answer and refresh its search vector."""
    now = now or timezone.now()
    answer.question = " ".join(answer.question.split())
    answer.tags = clean_tags(answer.tags)
    if not answer.question:
        raise ValidationFailed(
            "question: this field is required",
            errors={"question": ["Enter the question."]},
        )
    actor = user if user is not None and user.is_authenticated else None
    if answer.pk is None and answer.created_by_id is None:
        answer.created_by = actor
    if answer.is_published and answer.published_at is None:
        answer.published_at, answer.published_by = now, actor
    answer.save()
    _update_search_vector(answer)
    return answer


def _check_may_publish(user: AbstractBaseUser, answer: Answer) -> None:
    if library_selectors.is_consortium_admin(user):
        return
    if answer.library_id is None:
        raise Forbidden("only a consortium admin may publish consortium-wide answers")
    administered = library_selectors.libraries_administered_by(user)
    if not administered.filter(pk=answer.library_id).exists():
        raise Forbidden("you may only publish your own library's answers")


@transaction.atomic
def publish_answer(
    *, answer_id: int, user: AbstractBaseUser, now: datetime | None = None
) -> Answer:
    """Publish a draft; publishing a published answer changes nothing."""
    answer = Answer.objects.select_for_update(no_key=True).filter(pk=answer_id).first()
    if answer is None:
        raise NotFound("no such answer")
    _check_may_publish(user, answer)
    if not answer.answer.strip():
        raise StateConflict("an answer with no text cannot be published")
    if not answer.is_published:
        answer.is_published = True
        answer.published_at = now or timezone.now()
        answer.published_by = user
        answer.save(
            update_fields=["is_published", "published_at", "published_by", "updated_at"]
        )
        logger.info("faq answer %s published by user %s", answer.pk, user.pk)
    return answer


@transaction.atomic
def unpublish_answer(*, answer_id: int, user: AbstractBaseUser) -> Answer:
    answer = Answer.objects.select_for_update(no_key=True).filter(pk=answer_id).first()
    if answer is None:
        raise NotFound("no such answer")
    _check_may_publish(user, answer)
    Answer.objects.filter(pk=answer.pk).update(
        is_published=False, published_at=None, published_by=None
    )
    answer.refresh_from_db()
    return answer


def count_answer_opened(*, answer_id: int) -> bool:
    """Count a patron opening a published public answer."""
    return bool(
        Answer.objects.filter(pk=answer_id, is_published=True, is_public=True).update(
            open_count=F("open_count") + 1
        )
    )


def count_self_served(*, answer_id: int) -> bool:
    """Count an answer that ended a patron's wait ("this answered my question")."""
    return bool(
        Answer.objects.filter(pk=answer_id).update(
            self_served_count=F("self_served_count") + 1
        )
    )


# Drafts from chats and tickets
# ----------------------------------------------------------------------
def _short_question(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_QUESTION_CHARS:
        return text
    cut = text[: MAX_QUESTION_CHARS - 1].rsplit(" ", 1)[0]
    return f"{cut}…"


def _create_draft(
    *,
    library_id: int,
    question: str,
    answer: str,
    tags: list[str],
    names: list[str],
    emails: list[str],
    source: str,
    librarian: Librarian,
) -> Answer:
    question = scrub.scrub(question, names=names, emails=emails)
    answer = scrub.scrub(answer, names=names, emails=emails)
    if not question.strip() or not answer.strip():
        raise StateConflict("there is no question and answer to draft from")
    draft = Answer(
        question=_short_question(question),
        answer=answer.strip(),
        library_id=library_id,
        is_public=False,
        is_published=False,
        tags=tags,
        drafted_from=source,
    )
    save_answer(answer=draft, user=librarian.user)
    logger.info("faq draft %s from %s by librarian %s", draft.pk, source, librarian.pk)
    return draft


@transaction.atomic
def draft_answer_from_conversation(
    *, conversation_id: UUID, librarian: Librarian
) -> Answer:
    """An unpublished, staff-only answer from a closed chat: the patron's first
    message as the question, the librarian's messages as the answer, with the
    patron's details removed. A library admin of the chat's library publishes it."""
    from chat import selectors as chat_selectors
    from chat.models import ConversationStatus, Sender

    conversation = faq_selectors.get_visible_conversation(
        conversation_id=conversation_id, librarian=librarian
    )
    if conversation.status != ConversationStatus.CLOSED:
        raise StateConflict("only a closed chat can become an FAQ draft")
    messages = chat_selectors.messages_after(conversation.pk, 0)
    patron = [m for m in messages if m["sender"] == Sender.PATRON]
    answers = [m["body"] for m in messages if m["sender"] == Sender.LIBRARIAN]
    return _create_draft(
        library_id=conversation.origin_library_id,
        question=patron[0]["body"] if patron else "",
        answer="\n\n".join(answers),
        tags=clean_tags(conversation.tags),
        names=[conversation.patron_name, *(m["name"] for m in patron)],
        emails=[conversation.patron_email],
        source=f"conversation {conversation.pk}",
        librarian=librarian,
    )


@transaction.atomic
def draft_answer_from_ticket(*, reference: str, librarian: Librarian) -> Answer:
    """The same from an answered ticket: first patron message, the replies sent."""
    from tickets import selectors as ticket_selectors
    from tickets.models import Direction, OutboundKind

    visible = faq_selectors.get_visible_ticket(reference=reference, librarian=librarian)
    ticket = ticket_selectors.ticket_with_thread(visible.reference)
    if ticket.first_answered_at is None:
        raise StateConflict("only an answered ticket can become an FAQ draft")
    messages = list(ticket.messages.all())
    inbound = [m for m in messages if m.direction == Direction.INBOUND]
    replies = [
        m.body
        for m in messages
        if m.direction == Direction.OUTBOUND and m.kind == OutboundKind.REPLY
    ]
    return _create_draft(
        library_id=ticket.library_id,
        question=inbound[0].body if inbound else ticket.subject,
        answer="\n\n".join(replies),
        tags=clean_tags(ticket.tags),
        names=[ticket.patron_name, *(m.author for m in inbound)],
        emails=[ticket.patron_email, *(m.from_address for m in inbound)],
        source=f"ticket {ticket.reference}",
        librarian=librarian,
    )


# Canned responses
# ----------------------------------------------------------------------
def _checked_canned_fields(
    shortcut: str, title: str, body: str
) -> tuple[str, str, str]:
    errors = {}
    shortcut = slugify(shortcut.strip().lstrip("/"))[:40]
    title, body = " ".join(title.split())[:120], body.strip()
    if not shortcut:
        errors["shortcut"] = ["Enter a shortcut of letters, digits or dashes."]
    if not title:
        errors["title"] = ["Enter a title."]
    if not body:
        errors["body"] = ["Enter the text of the response."]
    if len(body) > 4000:
        errors["body"] = ["At most 4000 characters."]
    if errors:
        field = next(iter(errors))
        raise ValidationFailed(f"{field}: {errors[field][0]}", errors=errors)
    return shortcut, title, body


@transaction.atomic
def save_canned_response(*, response: CannedResponse) -> CannedResponse:
    """Store a canned response; personal ones also carry their owner's library."""
    response.shortcut, response.title, response.body = _checked_canned_fields(
        response.shortcut, response.title, response.body
    )
    if response.scope == CannedScope.CONSORTIUM:
        response.library, response.owner = None, None
    elif response.scope == CannedScope.LIBRARY:
        response.owner = None
    elif response.owner_id is not None:
        response.library_id = response.owner.library_id
    try:
        with transaction.atomic():
            response.save()
    except IntegrityError:
        raise StateConflict(
            f"the shortcut /{response.shortcut} is already used here",
            errors={"shortcut": ["Already used by another response in this scope."]},
        ) from None
    return response


def create_personal_canned_response(
    *, librarian: Librarian, shortcut: str, title: str, body: str
) -> CannedResponse:
    return save_canned_response(
        response=CannedResponse(
            scope=CannedScope.PERSONAL,
            owner=librarian,
            library_id=librarian.library_id,
            shortcut=shortcut,
            title=title,
            body=body,
        )
    )


@transaction.atomic
def delete_personal_canned_response(*, response_id: int, librarian: Librarian) -> None:
    deleted, _ = CannedResponse.objects.filter(
        pk=response_id, scope=CannedScope.PERSONAL, owner=librarian
    ).delete()
    if not deleted:
        raise NotFound("no such personal response")
