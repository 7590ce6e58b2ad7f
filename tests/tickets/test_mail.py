"""Inbound email: a corpus of realistic raw messages (tests/tickets/emails/), each
parsed, threaded and filed; the ticket it lands on and its visible body."""

import pytest
from django.core import mail

from tests.tickets.conftest import eml, thread_placeholders
from tickets import services, tokens
from tickets.mail import EmailParseError, html_to_text, parse_email, visible_text
from tickets.models import (
    Attachment,
    InboundEmail,
    Ticket,
    TicketMessage,
    TicketStatus,
)

DOMAIN = "refdesk.localhost"
DUMMY = {
    "TOKEN": "1-0123456789abcdef",
    "REFERENCE": "RD-26-000001",
    "OUR_MESSAGE_ID": "<RD-26-000001.out.1@refdesk.localhost>",
    "PATRON_MESSAGE_ID": "<RD-26-000001.in.1@refdesk.localhost>",
}


# Parsing alone (pure)
# ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "auto_kind"),
    [
        pytest.param("gmail_reply.eml", "", id="gmail"),
        pytest.param("outlook_reply.eml", "", id="outlook"),
        pytest.param("apple_mail_reply.eml", "", id="apple-mail"),
        pytest.param("thunderbird_reply.eml", "", id="thunderbird"),
        pytest.param("out_of_office.eml", "auto_reply", id="auto-submitted"),
        pytest.param("out_of_office_subject_only.eml", "auto_reply", id="ooo-subject"),
        pytest.param("bounce.eml", "bounce", id="multipart-report"),
        pytest.param("bulk_newsletter.eml", "bulk", id="precedence-bulk"),
    ],
)
def test_auto_replies_bulk_and_bounces_are_recognised(name, auto_kind):
    parsed = parse_email(eml(name, **DUMMY), mail_domain=DOMAIN)
    assert parsed.auto_kind == auto_kind
    assert parsed.is_auto_reply is bool(auto_kind)


def test_headers_are_decoded_from_rfc_2047():
    parsed = parse_email(eml("rfc2047_new_question.eml"), mail_domain=DOMAIN)
    assert parsed.subject == "Frage zur Fernleihe: Bücher über die Stadtgeschichte"
    assert (parsed.from_name, parsed.from_address) == (
        "Jörg Müller",
        "joerg.mueller@example.de",
    )
    assert parsed.local_parts == ("springfield",)


def test_threading_facts_are_read_from_every_recipient_header():
    parsed = parse_email(eml("base64_reply.eml", **DUMMY), mail_domain=DOMAIN)
    assert parsed.reply_tokens == (DUMMY["TOKEN"],)  # from X-Original-To
    gmail = parse_email(eml("gmail_reply.eml", **DUMMY), mail_domain=DOMAIN)
    assert gmail.thread_ids[0] == DUMMY["OUR_MESSAGE_ID"]  # In-Reply-To first
    assert gmail.subject_references == ("RD-26-000001",)


def test_reply_tokens_at_another_domain_are_not_ours():
    raw = eml("gmail_reply.eml", **DUMMY).replace(b"refdesk.localhost", b"evil.example")
    assert parse_email(raw, mail_domain=DOMAIN).reply_tokens == ()


def test_a_bounce_names_the_message_it_returns():
    parsed = parse_email(eml("bounce.eml", **DUMMY), mail_domain=DOMAIN)
    assert parsed.original_message_ids == (DUMMY["OUR_MESSAGE_ID"],)
    assert parsed.ticket_headers == ("RD-26-000001",)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(eml("garbage.eml"), id="random-bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\r\n\r\n   \r\n", id="blank"),
        pytest.param(b"Subject: no sender\r\n\r\nhello", id="no-sender"),
    ],
)
def test_bytes_that_are_not_an_email_raise_a_parse_error(raw):
    with pytest.raises(EmailParseError):
        parse_email(raw, mail_domain=DOMAIN)


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        pytest.param(
            "Thanks!\n\nOn Mon, 9 Mar 2026 at 10:00, Lib <a@b.example> wrote:\n> old",
            "Thanks!",
            id="gmail-one-line",
        ),
        pytest.param(
            "Thanks!\n\nLe lun. 9 mars 2026 à 10:00, Lib <a@b.example> a écrit :\n> vieux",
            "Thanks!",
            id="gmail-french",
        ),
        pytest.param(
            "Yes.\n\nFrom: Lib <a@b.example>\nSent: Monday\nTo: me\nSubject: x\n\nold",
            "Yes.",
            id="outlook-header-block",
        ),
        pytest.param(
            "Yes.\n-----Original Message-----\nFrom: x\nold",
            "Yes.",
            id="outlook-classic",
        ),
        pytest.param(
            "Reply one.\n> quoted\nReply two.\n> more quoted",
            "Reply one.\nReply two.",
            id="interleaved-quotes",
        ),
        pytest.param("Body.\n\n-- \nPat\n555-1234", "Body.", id="signature"),
        pytest.param(
            "On Monday my neighbour wrote: can I borrow a book?",
            "On Monday my neighbour wrote: can I borrow a book?",
            id="a-patrons-own-on-wrote-sentence-stays",
        ),
        pytest.param(
            "> only quoted text", "> only quoted text", id="all-quoted-keeps-all"
        ),
    ],
)
def test_visible_text_strips_quoted_history_and_signatures(text, visible):
    assert visible_text(text) == visible


def test_html_to_text_keeps_paragraphs_and_marks_quotes():
    html = (
        "<p>Hello &amp; welcome</p><script>x()</script><ul><li>one</li><li>two</li></ul>"
        "<blockquote>quoted <b>old</b> text</blockquote>"
    )
    assert html_to_text(html) == "Hello & welcome\n\n- one\n- two\n\n> quoted old text"


# Filing: replies land on their ticket
# ----------------------------------------------------------------------

REPLIES = [
    pytest.param(
        "gmail_reply.eml",
        "Thank you! The large print copy is exactly what I needed.\n"
        "Could I also renew the audiobook I have out?\n\nPat",
        id="gmail-token-in-to",
    ),
    pytest.param(
        "outlook_reply.eml",
        "Yes, Thursday afternoon works for me. I will bring my library card.\n\n"
        "Best regards,\nPat Doe",
        id="outlook-in-reply-to",
    ),
    pytest.param(
        "outlook_classic_reply.eml",
        "Thanks, that answers it \u2013 I\u2019ll ask at the desk on Thursday.\n\nPat",
        id="outlook-original-message-windows-1252",
    ),
    pytest.param(
        "apple_mail_reply.eml",
        "Perfect, I\u2019ll pick it up tomorrow morning.",
        id="apple-mail-iphone",
    ),
    pytest.param(
        "thunderbird_reply.eml",
        "Hi,\n\nthanks for the list of databases. JSTOR works from home now.\n\n"
        "One more question: is there a limit on downloads?",
        id="thunderbird-references-only",
    ),
    pytest.param(
        "html_only_reply.eml",
        "Hello again,\n\nI found the book on the shelf & checked it out. "
        "Thanks for your help!",
        id="html-only-token-in-cc",
    ),
    pytest.param(
        "base64_reply.eml",
        "Thanks \u2014 the e-book loan worked on my Kobo after I signed out and in again.",
        id="base64-token-in-x-original-to",
    ),
    pytest.param(
        "subject_reference.eml",
        "Hello,\n\nI forgot to say: I need the large print copy by Friday if possible."
        "\n\nThanks,\nPat",
        id="reference-in-subject-only",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "visible"), REPLIES)
def test_a_patron_reply_lands_on_its_ticket_and_reopens_it(answered, name, visible):
    ticket, reply = answered
    assert ticket.status == TicketStatus.ANSWERED

    inbound = services.file_inbound_email(
        eml(name, **thread_placeholders(ticket, reply))
    )

    assert (inbound.status, inbound.ticket_id, inbound.error) == (
        "filed",
        ticket.pk,
        "",
    )
    message = inbound.message
    assert message.body == visible
    assert message.direction == "inbound"
    assert not message.is_auto_reply
    assert message.full_body  # the whole text is kept beside the visible part
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    assert Ticket.objects.count() == 1
    # Nothing automatic answers a reply.
    assert not TicketMessage.objects.filter(direction="outbound", kind="confirmation")[
        1:
    ].exists()


@pytest.mark.django_db
def test_the_signed_token_wins_over_in_reply_to(answered, ask):
    ticket, reply = answered
    other = ask(question="Another question", email="someone@example.org")
    placeholders = thread_placeholders(ticket, reply)
    placeholders["TOKEN"] = tokens.reply_token(other.pk)

    inbound = services.file_inbound_email(eml("gmail_reply.eml", **placeholders))

    assert inbound.ticket_id == other.pk


@pytest.mark.django_db
def test_in_reply_to_wins_over_a_reference_in_the_subject(answered, ask):
    ticket, reply = answered
    other = ask(question="Another question", email="someone@example.org")
    placeholders = thread_placeholders(ticket, reply)
    placeholders["REFERENCE"] = other.reference

    inbound = services.file_inbound_email(eml("outlook_reply.eml", **placeholders))

    assert inbound.ticket_id == ticket.pk


@pytest.mark.django_db
def test_a_forged_token_is_ignored(answered):
    ticket, reply = answered
    placeholders = thread_placeholders(ticket, reply)
    forged = tokens.reply_token(ticket.pk)[:-1] + "0"
    assert tokens.ticket_id_from_token(forged) is None
    placeholders["TOKEN"] = forged
    placeholders["REFERENCE"] = "RD-99-999999"

    raw = eml("html_only_reply.eml", **placeholders).replace(
        b"springfield@", b"nobody@"
    )
    inbound = services.file_inbound_email(raw)

    assert inbound.status == "needs_attention"
    assert inbound.ticket_id is None


@pytest.mark.django_db
def test_the_same_message_delivered_twice_is_filed_once(answered):
    ticket, reply = answered
    raw = eml("gmail_reply.eml", **thread_placeholders(ticket, reply))

    first = services.file_inbound_email(raw)
    second = services.file_inbound_email(raw)

    assert (first.status, second.status) == ("filed", "ignored")
    assert second.message_id == first.message_id
    assert ticket.messages.filter(direction="inbound").count() == 2  # question + reply


# Filing: new questions by email
# ----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "library", "subject", "patron", "visible"),
    [
        pytest.param(
            "new_question_springfield.eml",
            "springfield",
            "Skateboarding books?",
            ("Bart Simpson", "bart@springfield-elementary.example"),
            "Hi,\n\ndo you have any books about skateboarding tricks for beginners?\n"
            "I am 10.\n\nBart",
            id="plain-new-question",
        ),
        pytest.param(
            "iso_8859_1_new_question.eml",
            "shelbyville",
            "Question sur les horaires du samedi",
            ("Renée Lefèvre", "renee.lefevre@example.fr"),
            "Bonjour,\n\nÀ quelle heure ouvre la bibliothèque le samedi ? Je voudrais\n"
            "emprunter un livre en français pour ma fille âgée de 8 ans.\n\n"
            "Merci d'avance,\nRenée",
            id="iso-8859-1-quoted-printable",
        ),
        pytest.param(
            "rfc2047_new_question.eml",
            "springfield",
            "Frage zur Fernleihe: Bücher über die Stadtgeschichte",
            ("Jörg Müller", "joerg.mueller@example.de"),
            "Guten Tag,\n\ngibt es Bücher über die Geschichte von Springfield, die ich "
            "per Fernleihe\nnach München bestellen kann?\n\nMit freundlichen Grüßen\n"
            "Jörg Müller",
            id="rfc2047-subject-and-name",
        ),
    ],
)
def test_a_new_question_by_email_opens_a_ticket_for_the_library_addressed(
    springfield, shelbyville, name, library, subject, patron, visible
):
    inbound = services.file_inbound_email(eml(name))

    assert inbound.status == "filed"
    ticket = inbound.ticket
    assert ticket.library.slug == library
    assert ticket.source == "email"
    assert ticket.status == TicketStatus.NEW
    assert ticket.subject == subject
    assert (ticket.patron_name, ticket.patron_email) == patron
    assert inbound.message.body == visible
    confirmation = ticket.messages.get(direction="outbound")
    assert confirmation.kind == "confirmation"
    assert confirmation.to_address == patron[1]
    assert confirmation.in_reply_to == inbound.message.message_id


@pytest.mark.django_db
def test_attachments_are_kept_up_to_the_limit_and_listed_beyond(springfield, settings):
    settings.REFDESK_TICKET_ATTACHMENT_MAX_BYTES = 200

    inbound = services.file_inbound_email(eml("attachment_new_question.eml"))

    message = inbound.message
    kept = {a.filename: a for a in Attachment.objects.filter(message=message)}
    assert sorted(kept) == ["Projektübersicht.pdf", "cover.png", "reading-list.txt"]
    assert bytes(kept["reading-list.txt"].data).startswith(
        b"Reading list:\n- Moby-Dick"
    )
    assert bytes(kept["Projektübersicht.pdf"].data).startswith(b"%PDF-1.4")
    png = kept["cover.png"]
    assert (png.is_dropped, png.size, bytes(png.data)) == (True, 541, b"")
    assert message.body == (
        "Hello,\n\nI attached my reading list and the project sheet. Do you have these\n"
        "books, and can I reserve them for my class?\n\nLisa\n\n"
        "[Attachment cover.png (541 bytes) was not kept: over the 200 bytes limit.]"
    )


# Auto-replies, bounces, bulk mail: recorded, never answered
# ----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "visible_start"),
    [
        pytest.param("out_of_office.eml", "I am out of the office", id="out-of-office"),
        pytest.param("bounce.eml", "This is the mail system", id="bounce"),
    ],
)
def test_an_auto_reply_is_recorded_on_its_ticket_but_changes_nothing(
    answered, name, visible_start
):
    ticket, reply = answered
    outbound_before = TicketMessage.objects.filter(direction="outbound").count()

    inbound = services.file_inbound_email(
        eml(name, **thread_placeholders(ticket, reply))
    )

    assert (inbound.status, inbound.ticket_id) == ("filed", ticket.pk)
    assert inbound.message.is_auto_reply
    assert inbound.message.body.startswith(visible_start)
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.ANSWERED  # not reopened
    assert TicketMessage.objects.filter(direction="outbound").count() == outbound_before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("out_of_office_subject_only.eml", id="out-of-office"),
        pytest.param("bulk_newsletter.eml", id="newsletter"),
    ],
)
def test_unmatched_auto_mail_never_opens_a_ticket(springfield, name):
    inbound = services.file_inbound_email(eml(name))

    assert inbound.status == "ignored"
    assert inbound.library == springfield
    assert not Ticket.objects.exists()
    assert not TicketMessage.objects.exists()


@pytest.mark.django_db
def test_our_own_mail_coming_back_is_ignored(answered):
    ticket, reply = answered
    from tickets.mail import outgoing

    wire = outgoing.build_email(reply).message().as_bytes()
    wire = wire.replace(reply.message_id.encode(), b"<looped-copy@refdesk.localhost>")

    inbound = services.file_inbound_email(wire)

    assert inbound.status == "ignored"
    assert ticket.messages.count() == 3  # question, confirmation, reply


@pytest.mark.django_db
def test_confirmations_to_one_address_are_capped_per_day(springfield):
    for n in range(5):
        raw = eml("new_question_springfield.eml").replace(
            b"<5d6e7f8a", f"<{n}-5d6e7f8a".encode()
        )
        services.file_inbound_email(raw)

    assert Ticket.objects.count() == 5
    assert TicketMessage.objects.filter(kind="confirmation").count() == 3


# Messages that cannot be filed are kept
# ----------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("garbage.eml", "no headers", id="garbage-bytes"),
        pytest.param("unknown_recipient.eml", "not sent to a library", id="no-library"),
    ],
)
def test_a_message_that_cannot_be_filed_is_kept_for_attention(springfield, name, error):
    raw = eml(name)

    inbound = services.file_inbound_email(raw)

    assert inbound.status == "needs_attention"
    assert error in inbound.error
    assert bytes(InboundEmail.objects.get(pk=inbound.pk).raw) == raw
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_needs_attention_is_listed_in_admin_and_can_be_filed_again(
    springfield, admin_client
):
    kept = services.file_inbound_email(eml("garbage.eml"))
    fixable = services.file_inbound_email(
        eml("new_question_springfield.eml").replace(b"springfield@", b"springfeld@")
    )
    filed = services.file_inbound_email(eml("rfc2047_new_question.eml"))

    page = admin_client.get("/admin/tickets/inboundemail/?attention=needed")

    assert page.status_code == 200
    listed = {row.pk for row in page.context["cl"].result_list}
    assert listed == {kept.pk, fixable.pk}
    assert filed.pk not in listed

    # The typo in the library address is fixed (an alias added); retry files it.
    springfield.slug = "springfeld"
    springfield.save()
    response = admin_client.post(
        "/admin/tickets/inboundemail/",
        {"action": "retry_filing", "_selected_action": [kept.pk, fixable.pk]},
        follow=True,
    )
    assert response.status_code == 200
    kept.refresh_from_db()
    fixable.refresh_from_db()
    assert (kept.status, fixable.status) == ("needs_attention", "filed")
    assert kept.attempts == 2
    assert fixable.ticket.library == springfield
    detail = admin_client.get(f"/admin/tickets/inboundemail/{kept.pk}/change/")
    assert detail.status_code == 200


@pytest.mark.django_db
def test_a_parsing_crash_keeps_the_raw_message(springfield, monkeypatch):
    from tickets.services import inbound as inbound_services

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(inbound_services, "_thread", explode)
    raw = eml("new_question_springfield.eml")

    inbound = services.file_inbound_email(raw)

    assert inbound.status == "needs_attention"
    assert "RuntimeError: boom" in inbound.error
    assert bytes(inbound.raw) == raw
    assert not mail.outbox
