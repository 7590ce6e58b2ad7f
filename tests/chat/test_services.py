"""Chat services against real PostgreSQL and Redis, races included."""

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import selectors, services
from chat.exceptions import (
    AlreadyTaken,
    ConversationClosed,
    ConversationNotFound,
    NotYours,
    StateConflict,
)
from chat.models import (
    ClosedBy,
    Conversation,
    ConversationStatus,
    ConversationStep,
    Message,
    QueueStep,
    Sender,
)
from libraries import directory, presence
from libraries.models import Closure, Library, SpecialHours, WeeklyHours
from refdesk.errors import Forbidden, NotFound, Unauthenticated

_sockets = iter(range(1, 1_000_000))


@pytest.fixture
def staff(make_librarian):
    """A librarian of `library` at an available desk, making the library staffed."""

    def put(library: Library):
        librarian = make_librarian(library)
        presence.touch(
            library_id=library.id,
            librarian_id=librarian.pk,
            socket_id=f"s{next(_sockets)}",
            available=True,
        )
        return librarian

    return put


def race(workers: list[Callable[[], object]]) -> list[tuple[str, object]]:
    """Run each worker in its own thread, released together by a barrier.

    Returns ("ok", result) or ("error", exception) per worker, in order. Each
    thread closes its own database connection.
    """
    barrier = threading.Barrier(len(workers))
    outcomes: list[tuple[str, object]] = [("missing", None)] * len(workers)

    def run(index: int, work: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = ("ok", work())
        except Exception as error:
            outcomes[index] = ("error", error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(i, work)) for i, work in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def accepting(conversation_id, librarian) -> Callable[[], Conversation]:
    return lambda: services.accept_conversation(
        conversation_id=conversation_id, librarian=librarian
    )


def assert_one_winner(outcomes, librarians) -> int:
    winners = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    losers = [result for kind, result in outcomes if kind == "error"]
    assert len(winners) == 1, outcomes
    assert len(losers) == len(librarians) - 1
    assert all(isinstance(error, AlreadyTaken) for error in losers), losers
    return winners[0]


# Accepting
# ----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_ten_racing_librarians_wins(springfield, staff, start_chat):
    librarians = [staff(springfield) for _ in range(10)]
    conversation, _ = start_chat()
    assert conversation.status == ConversationStatus.WAITING

    outcomes = race([accepting(conversation.id, librarian) for librarian in librarians])

    winner = librarians[assert_one_winner(outcomes, librarians)]
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.ACTIVE
    assert conversation.librarian_id == winner.pk
    assert conversation.answering_library_id == springfield.id
    assert conversation.escalate_at is None
    assert list(
        ConversationStep.objects.filter(conversation=conversation).values_list(
            "step", "left_because"
        )
    ) == [("local", "accepted")]


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_two_libraries_racing_for_an_overflow_chat_wins(
    springfield, shelbyville, make_librarian, staff, start_chat
):
    from_shelbyville = staff(shelbyville)
    conversation, _ = start_chat()
    assert (conversation.status, conversation.queue) == ("waiting", QueueStep.OVERFLOW)
    from_springfield = make_librarian(springfield)
    librarians = [from_shelbyville, from_springfield]

    outcomes = race([accepting(conversation.id, librarian) for librarian in librarians])

    winner = librarians[assert_one_winner(outcomes, librarians)]
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.ACTIVE
    assert conversation.librarian_id == winner.pk
    assert conversation.answering_library_id == winner.library_id


def test_overflow_taker_may_not_accept_another_librarys_local_chat(
    springfield, ogdenville, staff, make_librarian, start_chat
):
    staff(springfield)
    conversation, _ = start_chat()
    assert conversation.queue == QueueStep.LOCAL

    with pytest.raises(NotYours):
        services.accept_conversation(
            conversation_id=conversation.id, librarian=make_librarian(ogdenville)
        )

    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.WAITING
    assert conversation.librarian is None


def test_library_taking_no_overflow_may_not_accept_an_overflow_chat(
    springfield, shelbyville, make_library, staff, make_librarian, start_chat
):
    ogdenville = make_library("ogdenville", takes_overflow=False)
    staff(shelbyville)
    conversation, _ = start_chat()
    assert conversation.queue == QueueStep.OVERFLOW

    with pytest.raises(NotYours):
        services.accept_conversation(
            conversation_id=conversation.id, librarian=make_librarian(ogdenville)
        )


def test_accepting_a_taken_chat_is_already_taken(springfield, staff, start_chat):
    first, second = staff(springfield), staff(springfield)
    conversation, _ = start_chat()
    services.accept_conversation(conversation_id=conversation.id, librarian=first)

    with pytest.raises(AlreadyTaken):
        services.accept_conversation(conversation_id=conversation.id, librarian=second)


def test_partner_taking_no_overflow_neither_sees_nor_takes_partner_chats(
    springfield, shelbyville, make_library, staff, make_librarian, start_chat
):
    ogdenville = make_library("ogdenville", takes_overflow=False)
    springfield.partners.add(shelbyville, ogdenville)
    staff(shelbyville)
    staff(ogdenville)
    conversation, _ = start_chat()
    assert conversation.queue == QueueStep.PARTNER

    with pytest.raises(NotYours):
        services.accept_conversation(
            conversation_id=conversation.id, librarian=make_librarian(ogdenville)
        )
    assert [item["id"] for item in selectors.queue_for_library(shelbyville)] == [
        str(conversation.id)
    ]
    assert selectors.queue_for_library(ogdenville) == []


# Messages
# ----------------------------------------------------------------------
@pytest.fixture
def active_chat(springfield, staff, start_chat):
    """A springfield chat accepted by its librarian: (conversation, librarian)."""
    librarian = staff(springfield)
    conversation, _ = start_chat()
    services.accept_conversation(conversation_id=conversation.id, librarian=librarian)
    return conversation, librarian


@pytest.mark.django_db(transaction=True)
def test_seq_has_no_gaps_with_concurrent_senders(active_chat):
    conversation, librarian = active_chat

    def patron() -> None:
        for n in range(30):
            services.post_message(
                conversation_id=conversation.id, sender=Sender.PATRON, body=f"p{n}"
            )

    def desk() -> None:
        for n in range(30):
            services.post_message(
                conversation_id=conversation.id,
                sender=Sender.LIBRARIAN,
                body=f"l{n}",
                librarian=librarian,
            )

    outcomes = race([patron, desk])

    assert outcomes == [("ok", None), ("ok", None)]
    rows = list(
        Message.objects.filter(conversation=conversation).values_list("seq", "body")
    )
    assert sorted(seq for seq, _ in rows) == list(range(1, 62))
    by_seq = [body for _, body in sorted(rows)]
    assert [b for b in by_seq if b.startswith("p")] == [f"p{n}" for n in range(30)]
    assert [b for b in by_seq if b.startswith("l")] == [f"l{n}" for n in range(30)]
    conversation.refresh_from_db()
    assert conversation.last_seq == 61


def test_retried_message_is_stored_once(springfield, staff, start_chat):
    staff(springfield)
    conversation, _ = start_chat()

    first, created = services.post_message(
        conversation_id=conversation.id,
        sender=Sender.PATRON,
        body="hello",
        client_id="c1",
    )
    retried, created_again = services.post_message(
        conversation_id=conversation.id,
        sender=Sender.PATRON,
        body="hello",
        client_id="c1",
    )
    after, _ = services.post_message(
        conversation_id=conversation.id, sender=Sender.PATRON, body="still there?"
    )

    assert (created, created_again) == (True, False)
    assert retried.pk == first.pk
    assert retried.seq == first.seq == 2
    assert after.seq == 3
    assert (
        Message.objects.filter(conversation=conversation, client_id="c1").count() == 1
    )
    conversation.refresh_from_db()
    assert conversation.last_seq == 3


@pytest.mark.django_db(transaction=True)
def test_racing_retries_of_one_message_are_stored_once(springfield, staff, start_chat):
    staff(springfield)
    conversation, _ = start_chat()

    def send() -> tuple[Message, bool]:
        return services.post_message(
            conversation_id=conversation.id,
            sender=Sender.PATRON,
            body="hi",
            client_id="c1",
        )

    outcomes = race([send, send])

    assert [kind for kind, _ in outcomes] == ["ok", "ok"]
    results = [result for _, result in outcomes]
    assert sorted(created for _, created in results) == [False, True]
    assert {message.seq for message, _ in results} == {2}
    assert list(
        Message.objects.filter(conversation=conversation).values_list("seq")
    ) == [
        (1,),
        (2,),
    ]
    conversation.refresh_from_db()
    assert conversation.last_seq == 2


def test_same_client_id_from_the_other_role_is_another_message(active_chat):
    conversation, librarian = active_chat

    from_patron, _ = services.post_message(
        conversation_id=conversation.id, sender=Sender.PATRON, body="hi", client_id="c1"
    )
    from_librarian, created = services.post_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="hello",
        client_id="c1",
        librarian=librarian,
    )

    assert created is True
    assert (from_patron.seq, from_librarian.seq) == (2, 3)
    assert from_librarian.sender == Sender.LIBRARIAN
    assert from_librarian.name == librarian.display_name


def test_first_librarian_message_sets_first_reply_at(active_chat):
    conversation, librarian = active_chat
    now = timezone.now()

    services.post_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="Yes, two copies.",
        librarian=librarian,
        now=now,
    )
    services.post_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="Shall I hold one?",
        librarian=librarian,
        now=now + timedelta(minutes=1),
    )

    conversation.refresh_from_db()
    assert conversation.first_reply_at == now


def test_patron_message_to_an_offline_chat_is_refused(springfield, start_chat):
    conversation, _ = start_chat()
    assert conversation.status == ConversationStatus.OFFLINE

    with pytest.raises(ConversationClosed):
        services.post_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body="hi"
        )

    assert Message.objects.filter(conversation=conversation).count() == 1


def test_patron_message_to_an_abandoned_chat_is_refused(springfield, staff, start_chat):
    staff(springfield)
    conversation, _ = start_chat()
    services.patron_close(conversation_id=conversation.id)

    with pytest.raises(ConversationClosed):
        services.post_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body="hi"
        )


def test_messages_to_a_closed_chat_are_refused(active_chat):
    conversation, librarian = active_chat
    services.close_conversation(conversation_id=conversation.id, librarian=librarian)

    with pytest.raises(ConversationClosed):
        services.post_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body="hi"
        )
    with pytest.raises(ConversationClosed):
        services.post_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="bye",
            librarian=librarian,
        )
    conversation.refresh_from_db()
    assert conversation.last_seq == 1


def test_librarian_message_to_someone_elses_chat_is_not_yours(
    active_chat, springfield, make_librarian
):
    conversation, _ = active_chat
    colleague = make_librarian(springfield)

    with pytest.raises(NotYours):
        services.post_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="I'll take this",
            librarian=colleague,
        )

    assert Message.objects.filter(conversation=conversation).count() == 1


def test_librarian_message_to_a_waiting_chat_is_not_yours(
    springfield, staff, start_chat
):
    librarian = staff(springfield)
    conversation, _ = start_chat()

    with pytest.raises(NotYours):
        services.post_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="hello?",
            librarian=librarian,
        )


# Query counts
# ----------------------------------------------------------------------
def test_patron_message_query_count(
    springfield, staff, start_chat, django_assert_max_num_queries
):
    staff(springfield)
    conversation, _ = start_chat()

    with django_assert_max_num_queries(4):
        services.post_message(
            conversation_id=conversation.id, sender=Sender.PATRON, body="hi"
        )


def test_librarian_message_query_count(active_chat, django_assert_max_num_queries):
    conversation, librarian = active_chat

    with django_assert_max_num_queries(4):
        services.post_message(
            conversation_id=conversation.id,
            sender=Sender.LIBRARIAN,
            body="hello",
            librarian=librarian,
        )


def test_accept_query_count(
    springfield, staff, start_chat, django_assert_max_num_queries
):
    """Read the chat, take it, close its queue step, read its history: the row is
    not read again for the `accepted` frame or the patron's status."""
    librarian = staff(springfield)
    warm, _ = start_chat(question="warm-up")
    services.accept_conversation(conversation_id=warm.id, librarian=librarian)
    conversation, _ = start_chat()

    # savepoint, read, update, step, history, release
    with django_assert_max_num_queries(6):
        accepted = services.accept_conversation(
            conversation_id=conversation.id, librarian=librarian
        )

    stored = Conversation.objects.get(pk=conversation.id)
    for field in ("status", "librarian_id", "answering_library_id", "accepted_at"):
        assert getattr(accepted, field) == getattr(stored, field)
    assert stored.escalate_at is None
    assert services.patron_status(accepted) == services.patron_status(stored)


def count_queries(call: Callable[[], object]) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as context:
        result = call()
    return len(context), result


def test_queue_query_count_does_not_grow_with_waiting_chats(
    springfield, staff, start_chat
):
    staff(springfield)
    first, _ = start_chat(question="first")
    one_count, one = count_queries(lambda: selectors.queue_for_library(springfield))
    for n in range(9):
        start_chat(question=f"question {n}")

    ten_count, ten = count_queries(lambda: selectors.queue_for_library(springfield))

    assert [item["id"] for item in one] == [str(first.id)]
    assert len(ten) == 10
    assert ten[0]["question"] == "first"
    assert ten_count == one_count == 1  # library slugs: libraries/directory.py


def _library_with_calendar(make_library, staff, start_chat, slug: str, partner=None):
    library = make_library(slug, always_open=False)
    today = timezone.now().date()
    WeeklyHours.objects.bulk_create(
        WeeklyHours(library=library, weekday=d, opens="00:00", closes="00:00")
        for d in range(7)
    )
    SpecialHours.objects.create(
        library=library, day=today + timedelta(days=3), opens="10:00", closes="12:00"
    )
    Closure.objects.create(
        library=library, first=today + timedelta(days=5), last=today + timedelta(days=6)
    )
    if partner is not None:
        library.partners.add(partner)
    librarian = staff(library)
    conversation, _ = start_chat(library_slug=slug)
    services.accept_conversation(conversation_id=conversation.id, librarian=librarian)
    return library


def test_staffing_snapshot_query_count_does_not_grow_with_libraries(
    make_library, staff, start_chat
):
    def add(slugs):
        previous = None
        for slug in slugs:
            previous = _library_with_calendar(
                make_library, staff, start_chat, slug, partner=previous
            )

    add(["springfield", "shelbyville", "ogdenville"])
    directory.forget()  # as after a change to any library
    three_count, three = count_queries(
        lambda: selectors.staffing_snapshot(now=timezone.now())
    )
    add(["north-haverbrook", "capital-city", "brockway"])
    directory.forget()

    six_count, six = count_queries(
        lambda: selectors.staffing_snapshot(now=timezone.now())
    )

    warm_count, warm = count_queries(
        lambda: selectors.staffing_snapshot(now=timezone.now())
    )

    assert len(three) == 3
    assert len(six) == 6
    assert all(s.open_chats == 1 and s.available_librarians == 1 for s in six.values())
    assert sum(len(s.partner_ids) for s in six.values()) == 4
    # After a change: open chats + the libraries with their calendars, cards and
    # widget origins (libraries/directory.py); afterwards only the open chats.
    assert six_count == three_count == 8
    assert warm_count == 1
    assert warm == six


def test_staffing_counts_active_chats_of_available_librarians_per_library(
    springfield, shelbyville, staff, start_chat, make_librarian
):
    marge, ned, lurleen = staff(springfield), staff(springfield), staff(shelbyville)
    away = make_librarian(shelbyville)  # no desk open: not available

    def chat(status: str, librarian) -> None:
        conversation, _ = start_chat()
        Conversation.objects.filter(pk=conversation.pk).update(
            status=status, librarian=librarian
        )

    for status, librarian in [
        (ConversationStatus.ACTIVE, marge),
        (ConversationStatus.ACTIVE, marge),
        (ConversationStatus.ACTIVE, ned),
        (ConversationStatus.CLOSED, ned),
        (ConversationStatus.CLOSED, lurleen),
        (ConversationStatus.ACTIVE, away),
    ]:
        chat(status, librarian)
    start_chat()  # waiting, nobody's yet

    snapshot = selectors.staffing_snapshot(now=timezone.now())

    assert snapshot[springfield.id].open_chats == 3
    assert snapshot[springfield.id].available_librarians == 2
    assert snapshot[shelbyville.id].open_chats == 0
    assert snapshot[shelbyville.id].available_librarians == 1


# Escalation
# ----------------------------------------------------------------------
def test_escalation_runs_once_however_often_it_is_called(
    springfield, staff, start_chat
):
    staff(springfield)
    conversation, _ = start_chat()
    now = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(
        escalate_at=now - timedelta(seconds=1)
    )
    steps_before = ConversationStep.objects.filter(conversation=conversation).count()

    first = services.escalate_if_due(conversation_id=conversation.id, now=now)
    after_first = Conversation.objects.values().get(pk=conversation.pk)
    second = services.escalate_if_due(conversation_id=conversation.id, now=now)

    assert (first, second) == (True, False)
    assert Conversation.objects.values().get(pk=conversation.pk) == after_first
    steps = list(
        ConversationStep.objects.filter(conversation=conversation).order_by("id")
    )
    assert len(steps) == steps_before + 1
    assert (steps[0].step, steps[0].left_at, steps[0].left_because) == (
        "local",
        now,
        "timeout",
    )
    assert steps[-1].left_at is None or steps[-1].step == "offline"


def test_chat_not_yet_due_is_not_escalated(springfield, staff, start_chat):
    staff(springfield)
    conversation, _ = start_chat()
    before = Conversation.objects.values().get(pk=conversation.pk)

    escalated = services.escalate_if_due(
        conversation_id=conversation.id,
        now=conversation.escalate_at - timedelta(seconds=1),
    )

    assert escalated is False
    assert Conversation.objects.values().get(pk=conversation.pk) == before
    assert ConversationStep.objects.filter(conversation=conversation).count() == 1


# Patron tokens
# ----------------------------------------------------------------------
def test_missing_patron_token_is_unauthenticated(springfield, start_chat):
    conversation, _ = start_chat()

    with pytest.raises(Unauthenticated):
        services.check_patron_token(conversation_id=conversation.id, token="")


def test_another_conversations_token_is_forbidden(springfield, start_chat):
    conversation, _ = start_chat()
    _, other_token = start_chat(question="Another question")

    with pytest.raises(Forbidden):
        services.check_patron_token(conversation_id=conversation.id, token=other_token)


def test_right_patron_token_passes(springfield, start_chat):
    conversation, token = start_chat()

    services.check_patron_token(conversation_id=conversation.id, token=token)


# Patron closing
# ----------------------------------------------------------------------
def test_patron_closing_a_waiting_chat_abandons_it(
    springfield, staff, start_chat, django_capture_on_commit_callbacks
):
    staff(springfield)
    conversation, _ = start_chat()
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        closed = services.patron_close(conversation_id=conversation.id, now=now)

    assert callbacks
    conversation.refresh_from_db()
    assert closed.status == conversation.status == ConversationStatus.ABANDONED
    assert conversation.closed_by == ClosedBy.PATRON
    assert conversation.closed_at == now
    assert conversation.escalate_at is None
    assert (
        ConversationStep.objects.get(conversation=conversation).left_because
        == "abandoned"
    )


def test_patron_closing_an_active_chat_closes_it(
    active_chat, django_capture_on_commit_callbacks
):
    conversation, _ = active_chat
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.patron_close(conversation_id=conversation.id, now=now)

    assert callbacks
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.closed_by == ClosedBy.PATRON
    assert conversation.closed_at == now


def test_patron_closing_a_closed_chat_is_conversation_closed(active_chat):
    conversation, _ = active_chat
    services.patron_close(conversation_id=conversation.id)

    with pytest.raises(ConversationClosed):
        services.patron_close(conversation_id=conversation.id)


# Transfer
# ----------------------------------------------------------------------
def test_transfer_puts_the_chat_in_the_targets_local_queue(
    settings,
    active_chat,
    shelbyville,
    springfield,
    staff,
    make_librarian,
    django_capture_on_commit_callbacks,
):
    settings.REFDESK_LOCAL_WAIT = timedelta(seconds=45)
    conversation, librarian = active_chat
    staff(shelbyville)
    services.post_message(
        conversation_id=conversation.id,
        sender=Sender.LIBRARIAN,
        body="Let me ask Shelbyville.",
        librarian=librarian,
    )
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        services.transfer_conversation(
            conversation_id=conversation.id,
            librarian=librarian,
            to_library="shelbyville",
            note="Needs a Shelbyville card",
            now=now,
        )

    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.WAITING
    assert conversation.queue == QueueStep.LOCAL
    assert conversation.queue_library_id == shelbyville.id
    assert conversation.librarian_id is None
    assert conversation.answering_library_id is None
    assert conversation.accepted_at is None
    assert conversation.transfer_note == "Needs a Shelbyville card"
    assert conversation.escalate_at == now + timedelta(seconds=45)
    system = Message.objects.get(conversation=conversation, sender=Sender.SYSTEM)
    assert system.seq == 3
    assert system.body == services.TRANSFER_NOTICE
    assert system.librarian_id is None
    assert conversation.last_seq == 3
    [item] = selectors.queue_for_library(shelbyville)
    assert item["id"] == str(conversation.id)
    assert item["transfer_note"] == "Needs a Shelbyville card"
    with pytest.raises(NotYours):
        services.accept_conversation(
            conversation_id=conversation.id, librarian=make_librarian(springfield)
        )
    services.accept_conversation(
        conversation_id=conversation.id, librarian=make_librarian(shelbyville)
    )


def test_transfer_notice_does_not_speak_with_the_patrons_name(
    springfield, shelbyville, staff, start_chat
):
    librarian = staff(springfield)
    staff(shelbyville)
    conversation, _ = start_chat(name="Pat")
    services.accept_conversation(conversation_id=conversation.id, librarian=librarian)

    services.transfer_conversation(
        conversation_id=conversation.id, librarian=librarian, to_library="shelbyville"
    )

    system = Message.objects.get(conversation=conversation, sender=Sender.SYSTEM)
    assert system.name != "Pat"


def test_transfer_to_an_unknown_library_is_not_found(active_chat):
    conversation, librarian = active_chat

    with pytest.raises(NotFound):
        services.transfer_conversation(
            conversation_id=conversation.id,
            librarian=librarian,
            to_library="capital-city",
        )

    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.ACTIVE
    assert conversation.librarian_id == librarian.pk


def test_transferring_someone_elses_chat_is_not_yours(
    active_chat, springfield, shelbyville, staff, make_librarian
):
    conversation, _ = active_chat
    staff(shelbyville)

    with pytest.raises(NotYours):
        services.transfer_conversation(
            conversation_id=conversation.id,
            librarian=make_librarian(springfield),
            to_library="shelbyville",
        )


def test_transfer_with_nobody_available_is_a_state_conflict(active_chat, shelbyville):
    conversation, librarian = active_chat
    presence.store().clear()

    with pytest.raises(StateConflict):
        services.transfer_conversation(
            conversation_id=conversation.id,
            librarian=librarian,
            to_library="shelbyville",
        )

    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.ACTIVE


def test_patron_opened_counts_the_socket_and_returns_status_then_history(
    springfield, staff, start_chat, django_assert_max_num_queries
):
    staff(springfield)
    conversation, _ = start_chat(question="Is the branch open?")
    services.post_message(
        conversation_id=conversation.id, sender=Sender.PATRON, body="Hello?"
    )

    # the socket count, the status fields, the estimated wait, the messages
    with django_assert_max_num_queries(4):
        status, frames = services.patron_opened(
            conversation_id=conversation.id, after_seq=1
        )

    assert status == services.patron_status(
        Conversation.objects.get(pk=conversation.pk)
    )
    assert (status["type"], status["status"]) == ("status", "waiting")
    assert [(f["seq"], f["body"]) for f in frames] == [(2, "Hello?")]
    conversation.refresh_from_db()
    assert conversation.patron_sockets == 1


def test_patron_history_of_an_unknown_conversation_is_not_found(db):
    with pytest.raises(ConversationNotFound):
        services.patron_history(conversation_id=uuid.uuid4(), after_seq=0)
