"""Ticket services: every source, claiming (races included), replies, notes,
status, the SLA sweep (also through a real Celery worker with beat)."""

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from chat import services as chat_services
from chat.models import Conversation, ConversationStatus
from libraries import presence
from libraries.models import Role
from tickets import services
from tickets.exceptions import AlreadyTaken, Forbidden, NotYours, StateConflict
from tickets.models import Ticket, TicketMessage, TicketStatus

CHICAGO = ZoneInfo("America/Chicago")
MONDAY_9 = datetime(2026, 3, 2, 9, tzinfo=CHICAGO)


def staff(library, librarian):
    presence.touch(
        library_id=library.id,
        librarian_id=librarian.id,
        socket_id=f"desk-{librarian.id}",
        available=True,
    )


def start_chat(library_slug="springfield", **kwargs):
    conversation, token = chat_services.start_conversation(
        library_slug=library_slug,
        question=kwargs.pop("question", "Do you have Moby-Dick in large print?"),
        **kwargs,
    )
    return conversation, token


# Where tickets come from
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_question_becomes_a_ticket_with_a_reference_due_time_and_confirmation(
    springfield, weekday_hours, ask
):
    weekday_hours(springfield)

    ticket = services.create_ticket_from_question(
        library_slug="springfield",
        question="  Do you have\nMoby-Dick in large print?  ",
        email="pat@example.org",
        name="Pat",
        postal_code="62704",
        now=MONDAY_9,
    )

    assert re.fullmatch(r"RD-26-\d{6}", ticket.reference)
    assert (ticket.source, ticket.status, ticket.library) == (
        "question_form",
        "new",
        springfield,
    )
    assert ticket.subject == "Do you have"
    assert ticket.due_by == datetime(2026, 3, 4, 17, tzinfo=CHICAGO)  # 24 open hours
    assert ticket.pool_at == datetime(2026, 3, 3, 13, tzinfo=CHICAGO)
    assert ticket.risk_at == datetime(2026, 3, 4, 11, tzinfo=CHICAGO)
    question, confirmation = ticket.messages.order_by("id")
    assert (question.direction, question.author) == ("inbound", "Pat")
    assert question.message_id.endswith("@refdesk.localhost>")
    assert confirmation.kind == "confirmation"
    assert confirmation.to_address == "pat@example.org"
    assert "Wednesday 4 March 2026, 17:00 CST" in confirmation.full_body
    assert ticket.reference in confirmation.full_body


@pytest.mark.django_db
def test_references_count_up_within_a_year(springfield, ask):
    first, second = ask(), ask()
    assert int(second.reference[-6:]) == int(first.reference[-6:]) + 1


@pytest.mark.django_db
def test_a_chat_that_starts_offline_with_an_email_becomes_a_ticket_by_itself(
    springfield,
):
    conversation, _ = start_chat(name="Pat", email="pat@example.org")

    assert conversation.status == ConversationStatus.OFFLINE
    ticket = Ticket.objects.get(conversation=conversation)
    assert (ticket.source, ticket.library, ticket.patron_email) == (
        "chat_offline",
        springfield,
        "pat@example.org",
    )
    transcript = ticket.messages.get(direction="inbound")
    assert transcript.body == "Do you have Moby-Dick in large print?"
    assert ticket.messages.filter(kind="confirmation").exists()


@pytest.mark.django_db
def test_a_chat_without_an_email_does_not_become_a_ticket_by_itself(springfield):
    conversation, _ = start_chat(name="Pat")

    assert conversation.status == ConversationStatus.OFFLINE
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_a_waiting_chat_that_goes_offline_with_an_email_becomes_a_ticket(
    springfield, marge
):
    staff(springfield, marge)
    conversation, _ = start_chat(email="pat@example.org")
    assert conversation.status == ConversationStatus.WAITING

    presence.store().clear()
    chat_services.reroute_unstaffed()

    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OFFLINE
    assert Ticket.objects.get(conversation=conversation).source == "chat_offline"


@pytest.mark.django_db
def test_a_patron_who_leaves_a_waiting_chat_with_an_email_gets_a_ticket(
    springfield, marge
):
    staff(springfield, marge)
    conversation, _ = start_chat(email="pat@example.org", name="Pat")
    chat_services.post_message(
        conversation_id=conversation.id, sender="patron", body="Still there?"
    )

    chat_services.patron_close(conversation_id=conversation.id)

    ticket = Ticket.objects.get(conversation=conversation)
    assert ticket.source == "chat_abandoned"
    body = ticket.messages.get(direction="inbound").body
    assert "Pat: Do you have Moby-Dick in large print?" in body
    assert "Pat: Still there?" in body


@pytest.mark.django_db
def test_an_abandoned_chat_without_an_email_is_not_a_ticket(springfield, marge):
    staff(springfield, marge)
    conversation, _ = start_chat()
    chat_services.patron_close(conversation_id=conversation.id)
    assert not Ticket.objects.exists()


def _accepted_chat(library, librarian, origin: str = "springfield", **kwargs):
    staff(library, librarian)
    conversation, _ = start_chat(origin, **kwargs)
    chat_services.accept_conversation(
        conversation_id=conversation.id, librarian=librarian
    )
    chat_services.post_message(
        conversation_id=conversation.id,
        sender="librarian",
        body="Let me check the catalogue.",
        librarian=librarian,
    )
    return conversation


@pytest.mark.django_db
def test_follow_up_by_me_is_owned_by_the_closing_librarians_library(
    springfield, shelbyville, make_librarian
):
    # Shelbyville's librarian answers Springfield's overflow and follows up herself.
    lurleen = make_librarian(shelbyville, display_name="Lurleen")
    conversation = _accepted_chat(shelbyville, lurleen, name="Pat")
    assert conversation.origin_library == springfield

    chat_services.close_conversation(
        conversation_id=conversation.id,
        librarian=lurleen,
        outcome="follow_up_self",
        note="Check the ILL status tomorrow",
        tags=("ill",),
    )

    ticket = Ticket.objects.get(conversation=conversation)
    assert (ticket.source, ticket.library, ticket.claimed_by) == (
        "follow_up_self",
        shelbyville,
        lurleen,
    )
    assert ticket.status == TicketStatus.OPEN
    assert ticket.tags == ["ill"]
    transcript, note = ticket.messages.order_by("id")
    assert "Lurleen: Let me check the catalogue." in transcript.body
    assert (note.direction, note.body) == (
        "internal",
        "Closing note: Check the ILL status tomorrow",
    )
    assert not ticket.messages.filter(direction="outbound").exists()  # no email known


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("home", "owner"),
    [
        pytest.param("Shelbyville", "shelbyville", id="member-home-library"),
        pytest.param(
            "Capital City", "springfield", id="non-member-falls-back-to-origin"
        ),
    ],
)
def test_follow_up_by_the_patrons_library(springfield, shelbyville, marge, home, owner):
    conversation = _accepted_chat(
        springfield, marge, home_library=home, email="pat@example.org"
    )

    chat_services.close_conversation(
        conversation_id=conversation.id, librarian=marge, outcome="follow_up_home"
    )

    ticket = Ticket.objects.get(conversation=conversation)
    assert (ticket.source, ticket.library.slug, ticket.claimed_by) == (
        "follow_up_home",
        owner,
        None,
    )
    assert ticket.messages.filter(kind="confirmation").exists()


@pytest.mark.django_db
def test_a_chat_closed_as_answered_is_not_a_ticket(springfield, marge):
    conversation = _accepted_chat(springfield, marge, email="pat@example.org")
    chat_services.close_conversation(conversation_id=conversation.id, librarian=marge)
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_follow_up_takes_a_waiting_chat_offline_and_files_it(springfield, marge):
    staff(springfield, marge)
    conversation, token = start_chat(name="Pat")

    ticket, created = services.follow_up_conversation(
        conversation_id=conversation.id, token=token, email="pat@example.org"
    )

    assert created
    assert ticket.source == "follow_up"
    assert ticket.patron_email == "pat@example.org"
    conversation.refresh_from_db()
    assert (conversation.status, conversation.queue) == ("offline", "offline")
    again, created_again = services.follow_up_conversation(
        conversation_id=conversation.id, token=token, email="pat@example.org"
    )
    assert (again.pk, created_again) == (ticket.pk, False)


@pytest.mark.django_db
def test_follow_up_of_an_active_chat_is_a_conflict(springfield, marge):
    conversation = _accepted_chat(springfield, marge)
    token = chat_services.patron_token(conversation.id)

    with pytest.raises(StateConflict):
        services.follow_up_conversation(
            conversation_id=conversation.id, token=token, email="pat@example.org"
        )


@pytest.mark.django_db
def test_a_conversation_has_at_most_one_ticket(springfield):
    conversation, _ = start_chat(email="pat@example.org")
    again = services.create_ticket_from_conversation(
        conversation=Conversation.objects.get(pk=conversation.pk), source="follow_up"
    )
    assert Ticket.objects.get() == again


# Working on tickets
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_reply_answers_the_ticket_and_threads_on_the_patrons_message(
    springfield, marge, ask
):
    ticket = ask()
    question = ticket.messages.get(direction="inbound")
    confirmation = ticket.messages.get(kind="confirmation")

    reply = services.reply_to_ticket(
        reference=ticket.reference, librarian=marge, body=" Yes, we do. "
    )

    ticket.refresh_from_db()
    assert (ticket.status, ticket.claimed_by) == (TicketStatus.ANSWERED, marge)
    assert ticket.first_answered_at is not None
    assert (reply.direction, reply.kind, reply.body) == (
        "outbound",
        "reply",
        "Yes, we do.",
    )
    assert reply.in_reply_to == question.message_id
    assert reply.references == f"{question.message_id} {confirmation.message_id}"
    assert reply.to_address == "pat.doe@gmail.example"
    assert "Yes, we do." in reply.full_body
    assert "Marge" in reply.full_body


@pytest.mark.django_db
def test_a_ticket_claimed_by_someone_else_cannot_be_answered(
    springfield, marge, make_librarian, ask
):
    ticket = ask()
    services.claim_ticket(reference=ticket.reference, librarian=marge)
    colleague = make_librarian(springfield, display_name="Ned")

    with pytest.raises(NotYours):
        services.reply_to_ticket(
            reference=ticket.reference, librarian=colleague, body="Hi"
        )
    with pytest.raises(AlreadyTaken):
        services.claim_ticket(reference=ticket.reference, librarian=colleague)
    with pytest.raises(NotYours):
        services.release_ticket(reference=ticket.reference, librarian=colleague)

    boss = make_librarian(springfield, role=Role.LIBRARY_ADMIN, display_name="Boss")
    services.release_ticket(reference=ticket.reference, librarian=boss)
    assert Ticket.objects.get(pk=ticket.pk).claimed_by is None


@pytest.mark.django_db
def test_another_librarys_ticket_is_claimable_only_from_the_pool(
    springfield, shelbyville, make_librarian, ask
):
    ticket = ask(shelbyville)
    marge = make_librarian(springfield, display_name="Marge")

    with pytest.raises(Forbidden):
        services.claim_ticket(reference=ticket.reference, librarian=marge)

    Ticket.objects.filter(pk=ticket.pk).update(pool_at=timezone.now() - timedelta(1))
    services.sweep_ticket_sla()
    claimed = services.claim_ticket(reference=ticket.reference, librarian=marge)

    assert (claimed.claimed_by, claimed.status, claimed.library) == (
        marge,
        TicketStatus.OPEN,
        shelbyville,
    )


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_two_racing_librarians_claims_a_ticket(
    springfield, make_librarian, ask
):
    ticket = ask()
    racers = [make_librarian(springfield) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def claim(librarian):
        try:
            barrier.wait()
            results.append(
                services.claim_ticket(reference=ticket.reference, librarian=librarian)
            )
        except AlreadyTaken as error:
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(r,)) for r in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [r for r in results if isinstance(r, Ticket)]
    assert len(winners) == 1
    assert sum(isinstance(r, AlreadyTaken) for r in results) == 1
    assert Ticket.objects.get(pk=ticket.pk).claimed_by_id == winners[0].claimed_by_id


@pytest.mark.django_db(transaction=True)
def test_racing_tickets_get_distinct_references(springfield):
    barrier = threading.Barrier(4)
    references: list[str] = []

    def create(n):
        try:
            barrier.wait()
            ticket = services.create_ticket_from_question(
                library_slug="springfield", question=f"Q{n}", email=f"p{n}@example.org"
            )
            references.append(ticket.reference)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(references)) == 4


@pytest.mark.django_db
def test_notes_and_status_changes_stay_internal(springfield, marge, ask):
    ticket = ask()

    note = services.add_internal_note(
        reference=ticket.reference, librarian=marge, body="Patron called too."
    )
    closed = services.set_ticket_status(
        reference=ticket.reference, librarian=marge, status="closed"
    )

    assert (note.direction, note.author) == ("internal", "Marge")
    assert (closed.status, closed.closed_at is not None) == ("closed", True)
    assert ticket.messages.filter(direction="outbound").count() == 1  # confirmation
    reopened = services.set_ticket_status(
        reference=ticket.reference, librarian=marge, status="open"
    )
    assert (reopened.status, reopened.closed_at) == ("open", None)


@pytest.mark.django_db
def test_a_ticket_without_an_email_cannot_be_answered_by_email(springfield, marge):
    conversation = _accepted_chat(springfield, marge)
    chat_services.close_conversation(
        conversation_id=conversation.id, librarian=marge, outcome="follow_up_self"
    )
    ticket = Ticket.objects.get()

    with pytest.raises(StateConflict):
        services.reply_to_ticket(reference=ticket.reference, librarian=marge, body="Hi")


# Sending
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_an_outbound_message_is_sent_once(springfield, ask, mailoutbox):
    ticket = ask()
    confirmation = ticket.messages.get(kind="confirmation")

    assert services.deliver_ticket_message(message_id=confirmation.pk) is True
    assert services.deliver_ticket_message(message_id=confirmation.pk) is False

    assert len(mailoutbox) == 1
    sent = TicketMessage.objects.get(pk=confirmation.pk)
    assert (sent.sent_at is not None, sent.send_attempts) == (True, 1)


@pytest.mark.django_db
def test_mail_is_never_sent_to_our_own_domain(springfield, ask, mailoutbox):
    ticket = ask(email="loop@refdesk.localhost")
    assert not ticket.messages.filter(kind="confirmation").exists()
    assert mailoutbox == []


# The SLA sweep
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_the_sweep_pools_flags_at_risk_and_overdue_once(
    springfield, marge, ask, django_assert_max_num_queries
):
    now = timezone.now()
    fresh = ask()
    pooled = ask()
    risky = ask()
    late = ask()
    claimed = ask()
    answered = ask()
    Ticket.objects.filter(pk__in=[pooled.pk, risky.pk, late.pk, claimed.pk]).update(
        pool_at=now - timedelta(hours=1)
    )
    Ticket.objects.filter(pk__in=[risky.pk, late.pk]).update(risk_at=now)
    Ticket.objects.filter(pk=late.pk).update(due_by=now)
    services.claim_ticket(reference=claimed.reference, librarian=marge)
    services.reply_to_ticket(reference=answered.reference, librarian=marge, body="Done")
    Ticket.objects.filter(pk=answered.pk).update(pool_at=now, risk_at=now, due_by=now)

    with django_assert_max_num_queries(3):
        counts = services.sweep_ticket_sla(now=now)

    assert counts == {"pooled": 3, "at_risk": 2, "overdue": 1}
    flags = {t.pk: (t.in_pool, t.at_risk, t.is_overdue) for t in Ticket.objects.all()}
    assert flags[fresh.pk] == (False, False, False)
    assert flags[pooled.pk] == (True, False, False)
    assert flags[risky.pk] == (True, True, False)
    assert flags[late.pk] == (True, True, True)
    assert flags[claimed.pk] == (False, False, False)  # claimed: not pooled
    assert flags[answered.pk] == (False, False, False)
    assert services.sweep_ticket_sla(now=now) == {
        "pooled": 0,
        "at_risk": 0,
        "overdue": 0,
    }


@pytest.mark.django_db(transaction=True)
def test_the_beat_sweep_flags_tickets_through_a_real_worker(
    springfield, ask, celery_worker_factory
):
    past = datetime.now(UTC) - timedelta(minutes=5)
    late = ask()
    risky = ask()
    Ticket.objects.filter(pk=late.pk).update(pool_at=past, risk_at=past, due_by=past)
    Ticket.objects.filter(pk=risky.pk).update(risk_at=past, pool_at=past)

    celery_worker_factory(beat=True, REFDESK_TICKET_SWEEP_SECONDS="1")

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        late.refresh_from_db()
        risky.refresh_from_db()
        if late.is_overdue and risky.at_risk:
            break
        time.sleep(0.1)
    assert (late.in_pool, late.at_risk, late.is_overdue) == (True, True, True)
    assert (risky.in_pool, risky.at_risk, risky.is_overdue) == (True, True, False)
