"""Tickets in Chromium (issue 5): a question asked while nobody is staffed becomes a
ticket; a librarian answers it from the queue; the patron's emailed reply (raw
RFC 822, filed through the inbound service) reopens it."""

import re

import pytest
from playwright.sync_api import Page, expect

from libraries import presence
from libraries.models import Librarian
from tests.conftest import PASSWORD
from tests.tickets.conftest import eml, thread_placeholders
from tickets import services
from tickets.models import Ticket, TicketMessage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, librarian: Librarian, *, next_path: str) -> None:
    page.goto(f"/accounts/login/?next={next_path}")
    page.get_by_label("Username", exact=True).fill(librarian.user.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path}")


def real_errors(page: Page) -> list[str]:
    return [e for e in page.errors if "favicon" not in e]  # type: ignore[attr-defined]


def test_librarian_answers_from_the_queue_and_the_patrons_reply_reopens_it(
    new_page, make_library, make_librarian, screenshot
):
    presence.store().clear()  # nobody is staffed anywhere
    springfield = make_library("springfield")
    marge = make_librarian(springfield, display_name="Marge")

    # The patron asks while nobody is on and leaves an email.
    patron = new_page("patron", viewport={"width": 390, "height": 844})
    patron.goto("/ask/springfield/")
    patron.get_by_label("Your question", exact=True).fill(
        "Do you have Moby-Dick in large print?"
    )
    patron.get_by_label("Your name").fill("Pat Doe")
    patron.get_by_role("button", name="Start chat").click()
    patron.get_by_label("Email", exact=True).fill("pat.doe@gmail.example")
    patron.get_by_role("button", name="Answer me by email").click()
    result = patron.locator("#follow-up-result")
    expect(result).to_contain_text("A librarian will answer by email by")
    ticket = Ticket.objects.get()
    expect(result).to_contain_text(f"Your reference is {ticket.reference}.")
    assert ticket.source == "follow_up"

    # The librarian finds it in the queue with its due time and answers it.
    desk = new_page("desk")
    sign_in(desk, marge, next_path="/desk/tickets/")
    row = desk.get_by_role("row", name=re.compile(ticket.reference))
    expect(row).to_contain_text("Do you have Moby-Dick in large print?")
    expect(row).to_contain_text("On track")
    expect(row.locator("time")).to_have_attribute("datetime", ticket.due_by.isoformat())
    screenshot(desk, "tickets-queue", full_page=True)

    row.get_by_role("link", name=ticket.reference).click()
    expect(desk.get_by_role("heading", level=1)).to_have_text(
        "Do you have Moby-Dick in large print?"
    )
    composer = desk.get_by_label("Reply to the patron", exact=True)
    composer.fill(
        "Hello Pat,\n\nYes, we have Moby-Dick in large print at the main branch. "
        "I have put it on hold for you."
    )
    desk.get_by_role("button", name="Send reply").click()
    expect(desk.get_by_role("status")).to_contain_text("Your reply is on its way")
    expect(desk.locator("#ticket-status")).to_have_text("Answered")
    expect(desk.locator("#claimed-by")).to_have_text("Marge")
    expect(
        desk.locator(".thread-item.outbound", has_text="put it on hold")
    ).to_be_visible()
    screenshot(desk, "ticket-answered", full_page=True)

    # The patron replies by email from Gmail, quoting the answer.
    ticket.refresh_from_db()
    reply = TicketMessage.objects.get(ticket=ticket, kind="reply")
    inbound = services.file_inbound_email(
        eml("gmail_reply.eml", **thread_placeholders(ticket, reply))
    )
    assert (inbound.status, inbound.ticket_id) == ("filed", ticket.pk)

    desk.reload()
    expect(desk.locator("#ticket-status")).to_have_text("Open")
    patron_reply = desk.locator(".thread-item.inbound").last
    expect(patron_reply.locator(".thread-body")).to_have_text(
        "Thank you! The large print copy is exactly what I needed.\n"
        "Could I also renew the audiobook I have out?\n\nPat"
    )
    full = patron_reply.locator("details.full-body")
    expect(full.locator("pre")).to_be_hidden()
    full.locator("summary").focus()
    desk.keyboard.press("Enter")  # the quoted history opens from the keyboard
    expect(full.locator("pre")).to_contain_text("wrote:")
    screenshot(desk, "ticket-reopened", full_page=True)

    desk.get_by_role("link", name="Tickets", exact=True).click()
    expect(desk.get_by_role("row", name=re.compile(ticket.reference))).to_contain_text(
        "Open"
    )
    assert real_errors(desk) == []
    assert real_errors(patron) == []
