"""Reads for the chat: conversations, history, desk queues, the staffing snapshot."""

import functools
import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from chat import policy, protocol
from chat.exceptions import ConversationNotFound
from chat.models import (
    Conversation,
    ConversationStatus,
    ConversationStep,
    Message,
    QueueStep,
)
from libraries import directory, hours, presence
from libraries.local_info import card_verification
from libraries.models import Librarian, Library
from libraries.rendering import render_markdown
from libraries.selectors import library_hours
from refdesk import asyncdb
from tickets import selectors as ticket_selectors


def get_conversation(conversation_id: UUID) -> Conversation:
    try:
        return Conversation.objects.select_related(
            "origin_library", "queue_library", "answering_library", "librarian"
        ).get(pk=conversation_id)
    except Conversation.DoesNotExist:
        raise ConversationNotFound("no such conversation") from None


def messages_after(conversation_id: UUID, after_seq: int = 0) -> list[dict]:
    """Stored messages with `seq > after_seq`, oldest first, in the patron shape."""
    rows = Message.objects.filter(
        conversation_id=conversation_id, seq__gt=after_seq
    ).order_by("seq")
    return [protocol.message(row) for row in rows]


def desk_messages_after(conversation_id: UUID, after_seq: int = 0) -> list[dict]:
    return [
        protocol.desk_message(m, conversation_id)
        for m in messages_after(conversation_id, after_seq)
    ]


def library_slugs() -> dict[int, str]:
    return {library_id: lib.slug for library_id, lib in directory.libraries().items()}


def _question() -> Subquery:
    return Subquery(
        Message.objects.filter(conversation=OuterRef("pk"), seq=1).values("body")[:1]
    )


def queue_for_library(library: Library) -> list[dict]:
    """Every waiting chat a librarian of `library` may accept, oldest first.

    Its own library's local queue, chats offered to it as a partner, and all
    overflow when it takes overflow; the queue library keeps seeing its chats.
    """
    visible = Q(queue_library=library)
    if library.takes_overflow:
        visible |= Q(queue=QueueStep.PARTNER, queue_library__partners=library)
        visible |= Q(queue=QueueStep.OVERFLOW)
    rows = (
        Conversation.objects.filter(visible, status=ConversationStatus.WAITING)
        .annotate(question=_question())
        .order_by("created_at")
        .distinct()
    )
    slugs = library_slugs()
    return [
        protocol.queue_item(row, question=row.question or "", slugs=slugs)
        for row in rows
    ]


def eligible_library_ids(conversation: Conversation) -> set[int]:
    """Libraries whose librarians see a waiting chat and may accept it."""
    return eligible_library_ids_among(directory.libraries(), conversation)


def eligible_library_ids_among(
    libraries: dict[int, Library], conversation: Conversation
) -> set[int]:
    """`eligible_library_ids` from a copy of the member libraries (the
    directory's), for callers that hold one: no queries."""
    if conversation.status != ConversationStatus.WAITING:
        return set()
    queue_library_id = conversation.queue_library_id
    match conversation.queue:
        case QueueStep.LOCAL:
            return {queue_library_id}
        case QueueStep.PARTNER:
            queue_library = libraries.get(queue_library_id)
            partners = queue_library.partners.all() if queue_library else ()
            return {queue_library_id} | {
                partner.id
                for partner in partners
                if partner.id in libraries and libraries[partner.id].takes_overflow
            }
        case QueueStep.OVERFLOW:
            return {queue_library_id} | {
                library_id
                for library_id, library in libraries.items()
                if library.takes_overflow
            }
    return set()


def active_conversations_of(librarian_id: int) -> list[Conversation]:
    return list(
        Conversation.objects.filter(
            librarian_id=librarian_id, status=ConversationStatus.ACTIVE
        )
        .select_related("origin_library", "home_library")
        .order_by("accepted_at")
    )


@functools.lru_cache(maxsize=1024)
def _rendered(body: str) -> str:
    """Markdown + sanitising is a pure function of the text: render each text once
    per process (a card is rendered for every accept, on every desk reconnect)."""
    return str(render_markdown(body))


def local_info(library: Library, *, now: datetime | None = None) -> dict:
    """The staff-only local info card of a library, sections rendered and sanitised."""
    now = now or timezone.now()
    today = now.astimezone(ZoneInfo(library.timezone)).date()
    spans = hours.hours_on(library_hours(library), today)
    verified = card_verification(library, now=now)
    return {
        "library": protocol.library_ref(library),
        "verified_at": protocol.iso(library.local_info_verified_at),
        "verified_days_ago": verified.days_ago,
        "is_stale": verified.is_stale,
        "hours_today": [
            {"opens": protocol.iso(s.opens), "closes": protocol.iso(s.closes)}
            for s in spans
        ],
        "sections": [
            {
                "id": s.id,
                "title": s.title,
                "kind": s.kind,
                "body_html": _rendered(s.body),
            }
            for s in library.local_info.all()
        ],
    }


def _card_libraries(ids: list[int]) -> dict[int, Library]:
    return {library_id: directory.library(library_id) for library_id in ids}


def accepted_payloads(conversations: list[Conversation]) -> list[dict]:
    """The `accepted` frame for each conversation (history, patron, local info)."""
    ids = {c.origin_library_id for c in conversations} | {
        c.home_library_id for c in conversations if c.home_library_id
    }
    cards = _card_libraries(sorted(ids))
    history: dict[UUID, list[dict]] = {c.id: [] for c in conversations}
    for row in Message.objects.filter(conversation__in=conversations).order_by(
        "conversation", "seq"
    ):
        history[row.conversation_id].append(protocol.message(row))
    rendered: dict[int, dict] = {}
    return [accepted_frame(c, history[c.id], cards, rendered) for c in conversations]


def accepted_frame(
    conversation: Conversation,
    history: list[dict],
    cards: dict[int, Library],
    rendered: dict[int, dict] | None = None,
) -> dict:
    """One conversation's `accepted` frame from its messages (patron shape, in
    `seq` order) and `cards`, which hold its origin and home libraries. No
    queries: the sockets build it on the event loop. `rendered` keeps the local
    info cards made so far, for a caller building many frames."""
    rendered = {} if rendered is None else rendered

    def card(library_id: int) -> dict:
        if library_id not in rendered:
            rendered[library_id] = local_info(cards[library_id])
        return rendered[library_id]

    c = conversation
    home = cards.get(c.home_library_id) if c.home_library_id else None
    frame = {
        "type": "accepted",
        "conversation": str(c.id),
        "history": [protocol.desk_message(m, c.id) for m in history],
        "patron": {
            "name": c.patron_name,
            "home_library": home.slug if home else c.declared_home_library,
            "postal_code": c.postal_code,
            "in_area": c.is_in_area,
        },
        "origin_library": protocol.library_ref(cards[c.origin_library_id]),
        "local_info": card(c.origin_library_id),
    }
    if c.home_library_id and c.home_library_id != c.origin_library_id:
        frame["home_local_info"] = card(c.home_library_id)
    return frame


def librarian_for_desk(user_id: int) -> Librarian | None:
    return (
        Librarian.objects.select_related("library", "user")
        .filter(user_id=user_id, user__is_active=True, library__isnull=False)
        .first()
    )


# Staffing
# ----------------------------------------------------------------------
_OPEN_CHATS = (
    f"SELECT l.library_id, COUNT(*) FROM {Conversation._meta.db_table} c "
    f"JOIN {Librarian._meta.db_table} l ON l.id = c.librarian_id "
    "WHERE c.status = %s AND c.librarian_id IN ({ids}) GROUP BY l.library_id"
)


def _open_chats_by_library(librarian_ids: set[int]) -> dict[int, int]:
    """Active chats of these librarians, counted per library.

    In SQL because every chat start runs it on the web process's one sync
    thread: building the ORM query took 0.4 ms of CPU, running it 0.1 ms.
    """
    ids = sorted(librarian_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            _OPEN_CHATS.format(ids=", ".join(["%s"] * len(ids))),
            [ConversationStatus.ACTIVE.value, *ids],
        )
        return dict(cursor.fetchall())


def _calendar_libraries() -> list[Library]:
    return list(directory.libraries().values())


def staffing_snapshot(
    *, now: datetime, libraries: list[Library] | None = None
) -> dict[int, policy.LibraryStaffing]:
    """Per library: open now?, available librarians, their open chats, its settings.

    A fixed number of queries (libraries with calendars and partners, open
    chats per library: none when nobody is at a desk) and one presence read,
    however many libraries.
    """
    available = presence.available_librarians()
    librarian_ids = set().union(*available.values()) if available else set()
    open_chats = _open_chats_by_library(librarian_ids) if librarian_ids else {}
    local_default = settings.REFDESK_LOCAL_WAIT
    snapshot = {}
    for library in libraries if libraries is not None else _calendar_libraries():
        local_wait = (
            timedelta(seconds=library.local_wait_seconds)
            if library.local_wait_seconds is not None
            else local_default
        )
        partner_wait = (
            timedelta(seconds=library.partner_wait_seconds)
            if library.partner_wait_seconds is not None
            else local_default
        )
        snapshot[library.id] = policy.LibraryStaffing(
            library_id=library.id,
            is_open=hours.is_open(library_hours(library), now),
            available_librarians=len(available.get(library.id, ())),
            open_chats=open_chats.get(library.id, 0),
            chats_per_librarian=library.chats_per_librarian,
            takes_overflow=library.takes_overflow,
            sends_overflow=library.sends_overflow,
            partner_ids=tuple(sorted(p.id for p in library.partners.all())),
            local_wait=local_wait,
            partner_wait=partner_wait,
        )
    return snapshot


def estimated_wait_seconds(*, step: str, now: datetime) -> int:
    """The median of recent waits at this step that ended with an accept.

    With no recent accepts the estimate is the step's wait, the longest a chat
    stays there before moving on.
    """
    return _estimate(
        step,
        ConversationStep.objects.filter(
            step=step, left_because="accepted", entered_at__gte=now - _RECENT
        )
        .order_by("-entered_at")
        .values_list("entered_at", "left_at")[:_SAMPLE],
    )


async def aestimated_wait_seconds(*, step: str, now: datetime) -> int:
    """`estimated_wait_seconds` on the event loop's pool (`refdesk.asyncdb`):
    the same query, as SQL."""
    rows = await asyncdb.fetchall(_RECENT_WAITS, [step, now - _RECENT])
    return _estimate(step, rows)


_RECENT = timedelta(hours=6)
_SAMPLE = 50
_RECENT_WAITS = (
    f"SELECT entered_at, left_at FROM {ConversationStep._meta.db_table} "
    "WHERE step = %s AND left_because = 'accepted' AND entered_at >= %s "
    f"ORDER BY entered_at DESC LIMIT {_SAMPLE}"
)


def _estimate(step: str, waits: Iterable[tuple[datetime, datetime]]) -> int:
    seconds = [(left - entered).total_seconds() for entered, left in waits]
    if seconds:
        return max(5, round(statistics.median(seconds)))
    fallback = (
        settings.REFDESK_OVERFLOW_WAIT
        if step == QueueStep.OVERFLOW
        else settings.REFDESK_LOCAL_WAIT
    )
    return round(fallback.total_seconds())


def due_conversation_ids(*, now: datetime, limit: int = 100) -> list[UUID]:
    return list(
        Conversation.objects.filter(
            status=ConversationStatus.WAITING, escalate_at__lte=now
        )
        .order_by("escalate_at")
        .values_list("id", flat=True)[:limit]
    )


def waiting_conversations() -> list[Conversation]:
    return list(
        Conversation.objects.filter(status=ConversationStatus.WAITING).only(
            "id",
            "queue",
            "queue_library_id",
            "offered_library_ids",
            "origin_library_id",
            "home_library_id",
        )
    )


def abandoned_candidates(*, now: datetime) -> list[UUID]:
    """Waiting chats with no patron socket for the abandon period."""
    cutoff = now - settings.REFDESK_ABANDON_AFTER
    return list(
        Conversation.objects.filter(
            status=ConversationStatus.WAITING,
            patron_sockets=0,
            patron_seen_at__lte=cutoff,
        ).values_list("id", flat=True)[:100]
    )


def library_list() -> list[dict]:
    return [
        {
            "slug": lib.slug,
            "name": lib.name,
            "timezone": lib.timezone,
            "website": lib.website,
        }
        for lib in Library.objects.order_by("name")
    ]


def library_status(library: Library, *, now: datetime) -> dict:
    """What a patron's widget shows before they ask: can a chat be answered now?"""
    libraries = _calendar_libraries()
    staffing = staffing_snapshot(now=now, libraries=libraries)
    route = policy.route_chat(
        chat=policy.ChatFacts(origin_id=library.id),
        staffing=staffing,
        after=None,
        overflow_wait=settings.REFDESK_OVERFLOW_WAIT,
        now=now,
    )
    available = route.step != "offline"
    local = staffing.get(library.id)
    today = now.astimezone(ZoneInfo(library.timezone)).date()
    calendar = next(lib for lib in libraries if lib.id == library.id)
    return {
        "slug": library.slug,
        "chat_available": available,
        "staffed_locally": bool(local and local.is_staffed),
        "estimated_wait_seconds": (
            estimated_wait_seconds(step=route.step, now=now) if available else None
        ),
        # When nobody can chat: the time an emailed question is answered by.
        "answer_by": (
            None
            if available
            else protocol.iso(ticket_selectors.answer_due_for(calendar, now=now))
        ),
        "hours_today": [
            {"opens": protocol.iso(s.opens), "closes": protocol.iso(s.closes)}
            for s in hours.hours_on(library_hours(calendar), today)
        ],
    }
