"""Issue 4 in a real browser: a Springfield patron whose library does not answer
reaches a Shelbyville librarian, through the Celery-routed overflow."""

import re
import time

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, ConversationStep
from tests.browser.test_patron_desk import ask, open_desk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_unanswered_springfield_chat_overflows_to_shelbyville_within_the_wait(
    new_page, make_library, make_librarian, celery_worker, screenshot
):
    springfield = make_library("springfield", local_wait_seconds=2)
    shelbyville = make_library("shelbyville")
    marge = make_librarian(springfield, display_name="Marge")
    lurleen = make_librarian(shelbyville, display_name="Lurleen")
    springfield_desk = new_page("springfield-desk")
    open_desk(springfield_desk, marge)
    shelbyville_desk = new_page("shelbyville-desk")
    open_desk(shelbyville_desk, lurleen)
    patron = new_page("patron")

    question = "Does the library have old city directories?"
    started = time.monotonic()
    ask(patron, question)

    # First the patron's own library alone is offered the chat ...
    expect(springfield_desk.locator(".queue-item", has_text=question)).to_be_visible()
    expect(shelbyville_desk.locator(".queue-item", has_text=question)).to_have_count(0)
    # ... nobody takes it, and once the local wait runs out Shelbyville gets it.
    offer = shelbyville_desk.locator(".queue-item", has_text=question)
    expect(offer).to_be_visible(timeout=10_000)
    waited = time.monotonic() - started
    assert 2 <= waited < 8, waited
    screenshot(shelbyville_desk, "desk-overflow-offer")

    offer.get_by_role("button", name=re.compile(r"^Accept")).click()
    expect(
        shelbyville_desk.get_by_role("tab", name=re.compile("Springfield"))
    ).to_be_visible()
    expect(springfield_desk.locator(".queue-item", has_text=question)).to_have_count(0)
    # The patron hears of the network, not of "another library".
    expect(patron.locator("#state-line")).to_have_text(
        "You're chatting with a librarian from Ask a Librarian"
    )
    panel = shelbyville_desk.locator(".chat-panel:not([hidden])")
    expect(panel.locator(".local-info")).to_contain_text("Springfield Public Library")

    conversation = Conversation.objects.get()
    assert (conversation.origin_library, conversation.answering_library) == (
        springfield,
        shelbyville,
    )
    assert list(
        ConversationStep.objects.filter(conversation=conversation).values_list(
            "step", "left_because"
        )
    ) == [("local", "timeout"), ("overflow", "accepted")]


def test_away_springfield_librarian_sends_the_chat_to_shelbyville_at_once(
    new_page, make_library, make_librarian, celery_worker
):
    springfield = make_library("springfield")
    shelbyville = make_library("shelbyville")
    marge = make_librarian(springfield, display_name="Marge")
    lurleen = make_librarian(shelbyville, display_name="Lurleen")
    springfield_desk = new_page("springfield-desk")
    open_desk(springfield_desk, marge)
    springfield_desk.get_by_label("Away", exact=True).check()
    expect(springfield_desk.get_by_label("Away", exact=True)).to_be_checked()
    shelbyville_desk = new_page("shelbyville-desk")
    open_desk(shelbyville_desk, lurleen)
    patron = new_page("patron")

    question = "Can I renew a book from another branch?"
    ask(patron, question)

    expect(shelbyville_desk.locator(".queue-item", has_text=question)).to_be_visible(
        timeout=3_000
    )
    assert Conversation.objects.get().queue == "overflow"
