"""Outgoing mail checked on the wire: a real SMTP server (aiosmtpd) on a free
port, Django's SMTP backend, and the Celery task with its retries."""

import email
import email.policy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chat import services as chat_services
from tests.tickets.conftest import eml, thread_placeholders
from tickets import services, tasks, tokens
from tickets.models import Ticket, TicketMessage

CHICAGO = ZoneInfo("America/Chicago")
MONDAY_9 = datetime(2026, 3, 2, 9, tzinfo=CHICAGO)


def wire(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def text_and_html(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text.replace("\r\n", "\n"), html


@pytest.mark.django_db
def test_the_confirmation_carries_threading_headers_and_the_due_time(
    springfield, weekday_hours, smtp_server
):
    sink, _ = smtp_server
    weekday_hours(springfield)
    ticket = services.create_ticket_from_question(
        library_slug="springfield",
        question="Do you have Moby-Dick in large print?",
        email="pat@example.org",
        name="Pat",
        now=MONDAY_9,
    )
    question = ticket.messages.get(direction="inbound")
    stored = ticket.messages.get(kind="confirmation")

    tasks.send_ticket_email.apply(args=[stored.pk])

    (envelope,) = sink.wait_for(1)
    assert envelope.mail_from == "springfield@refdesk.localhost"
    assert envelope.rcpt_tos == ["pat@example.org"]
    sent = wire(envelope)
    assert sent["Message-ID"] == stored.message_id
    assert sent["Message-ID"].endswith("@refdesk.localhost>")
    assert sent["In-Reply-To"].strip() == question.message_id
    assert sent["References"].split() == [question.message_id]
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["X-Refdesk-Ticket"] == ticket.reference
    assert sent["From"] == "Springfield Public Library <springfield@refdesk.localhost>"
    assert ticket.reference in sent["Subject"]
    reply_to = sent["Reply-To"].addresses[0]
    assert (reply_to.domain, reply_to.username.startswith("reply+")) == (
        "refdesk.localhost",
        True,
    )
    assert tokens.ticket_id_from_token(reply_to.username[len("reply+") :]) == ticket.pk
    text, html = text_and_html(sent)
    assert "by Wednesday 4 March 2026, 17:00 CST" in text
    assert f"Your reference is {ticket.reference}." in text
    assert "Wednesday 4 March 2026, 17:00 CST" in html
    assert "#1f4e79" in html  # the library's brand colour
    assert TicketMessage.objects.get(pk=stored.pk).sent_at is not None


@pytest.mark.django_db
def test_a_librarians_reply_threads_on_the_patrons_latest_mail(
    answered, marge, smtp_server
):
    sink, _ = smtp_server
    ticket, first_reply = answered
    inbound = services.file_inbound_email(
        eml("gmail_reply.eml", **thread_placeholders(ticket, first_reply))
    )
    patron_mail = inbound.message

    second = services.reply_to_ticket(
        reference=ticket.reference, librarian=marge, body="Yes, renewed until April."
    )
    tasks.send_ticket_email.apply(args=[second.pk])

    sent = wire(sink.wait_for(1)[0])
    thread = list(
        ticket.messages.exclude(direction="internal")
        .exclude(pk=second.pk)
        .order_by("created_at", "id")
        .values_list("message_id", flat=True)
    )
    assert sent["Message-ID"] == second.message_id
    assert sent["In-Reply-To"].strip() == patron_mail.message_id
    assert sent["References"].split() == thread
    assert thread[-1] == patron_mail.message_id
    assert sent["Auto-Submitted"] is None  # a person wrote it
    assert sent["To"] == "pat.doe@gmail.example"
    assert (
        sent["Subject"]
        == f"Re: Do you have Moby-Dick in large print? [{ticket.reference}]"
    )
    text, _ = text_and_html(sent)
    assert text.startswith(
        "Yes, renewed until April.\n\nMarge\nSpringfield Public Library"
    )


@pytest.mark.django_db
def test_patron_text_is_escaped_in_the_html_part(springfield, smtp_server):
    sink, _ = smtp_server
    ticket = services.create_ticket_from_question(
        library_slug="springfield",
        question='<script>alert("x")</script> & more',
        email="pat@example.org",
    )

    tasks.send_ticket_email.apply(args=[ticket.messages.get(kind="confirmation").pk])

    text, html = text_and_html(wire(sink.wait_for(1)[0]))
    assert '<script>alert("x")</script> & more' in text
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.django_db
def test_a_transient_smtp_failure_is_retried(springfield, smtp_server):
    sink, _ = smtp_server
    sink.fail_next = 1
    ticket = services.create_ticket_from_question(
        library_slug="springfield", question="Q?", email="pat@example.org"
    )
    stored = ticket.messages.get(kind="confirmation")

    tasks.send_ticket_email.apply(args=[stored.pk])

    assert sink.refused == 1
    (envelope,) = sink.wait_for(1)
    assert wire(envelope)["Message-ID"] == stored.message_id
    stored.refresh_from_db()
    assert (stored.sent_at is not None, stored.send_attempts, stored.send_error) == (
        True,
        2,
        "",
    )


@pytest.mark.django_db
def test_a_permanent_refusal_is_recorded_not_retried(springfield, smtp_server):
    sink, _ = smtp_server
    sink.fail_next = 5
    sink.failure = "554 5.7.1 Message rejected"
    ticket = services.create_ticket_from_question(
        library_slug="springfield", question="Q?", email="pat@example.org"
    )
    stored = ticket.messages.get(kind="confirmation")

    tasks.send_ticket_email.apply(args=[stored.pk])

    assert sink.refused == 1
    stored.refresh_from_db()
    assert stored.sent_at is None
    assert stored.send_error.startswith("not sent: refused")
    assert services.resend_unsent(older_than=timedelta(0)) == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_sends_after_commit_and_retries_a_refusal(
    springfield, smtp_server, celery_worker_factory
):
    sink, port = smtp_server
    sink.fail_next = 1
    celery_worker_factory(EMAIL_URL=f"smtp://127.0.0.1:{port}")

    ticket = services.create_ticket_from_question(
        library_slug="springfield", question="Q?", email="pat@example.org"
    )

    (envelope,) = sink.wait_for(1, timeout=20)
    assert sink.refused == 1
    stored = Ticket.objects.get(pk=ticket.pk).messages.get(kind="confirmation")
    assert wire(envelope)["Message-ID"] == stored.message_id
    assert stored.sent_at is not None


@pytest.mark.django_db
def test_a_chat_transcript_without_a_ticket_goes_out_on_request(
    springfield, smtp_server
):
    sink, _ = smtp_server
    conversation, _ = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?", name="Pat"
    )

    services.deliver_chat_transcript(
        conversation_id=conversation.id, to_address="pat@example.org"
    )

    sent = wire(sink.wait_for(1)[0])
    assert sent["Auto-Submitted"] == "auto-generated"
    assert sent["Reply-To"] == "springfield@refdesk.localhost"
    assert sent["Message-ID"].endswith("@refdesk.localhost>")
    text, _ = text_and_html(sent)
    assert "Pat: Moby-Dick?" in text
