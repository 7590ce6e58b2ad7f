"""A patron and a librarian chat through the real stack, in Chromium.

Covers issue 3's browser test: ask on /ask/springfield/, the offer on the desk,
accept, messages both ways, a reload that keeps the history, close with an
outcome; the widget embedded in a member page and opened by keyboard; and
HTML in patron text shown as text on the desk.
"""

import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from libraries.models import Librarian, WidgetOrigin
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MOBILE = {"width": 390, "height": 844}


def open_desk(page: Page, librarian: Librarian) -> None:
    """Sign in through /accounts/login/ and wait until the desk socket is live."""
    page.goto("/accounts/login/")
    page.get_by_label("Username", exact=True).fill(librarian.user.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/desk/")
    expect(page.locator("body")).to_have_attribute("data-desk", "ready")
    expect(page.get_by_label("Available", exact=True)).to_be_checked()


def ask(page: Page, question: str, *, name: str = "", place: str = "") -> None:
    page.goto("/ask/springfield/")
    page.get_by_label("Your question", exact=True).fill(question)
    if name:
        page.get_by_label("Your name").fill(name)
    if place:
        page.get_by_label("Home library or postal code").fill(place)
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator("#chat-view")).to_be_visible()


def desk_composer(desk: Page):
    return desk.locator(".chat-panel:not([hidden])").get_by_label(
        "Reply to the patron", exact=True
    )


def real_errors(page: Page) -> list[str]:
    return [e for e in page.errors if "favicon" not in e]  # type: ignore[attr-defined]


def test_patron_asks_librarian_answers_reload_keeps_history_and_close(
    new_page, make_library, make_librarian, celery_worker, screenshot
):
    springfield = make_library("springfield")
    marge = make_librarian(springfield, display_name="Marge")
    desk = new_page("desk")
    open_desk(desk, marge)

    patron = new_page("patron", viewport=MOBILE)
    patron.goto("/ask/springfield/")
    expect(patron.locator("#availability-text")).to_contain_text(
        "A librarian is available"
    )
    expect(patron.locator("#question-counter")).to_have_text("0 / 2000 characters")
    screenshot(patron, "patron-ask-form", full_page=True)

    question = "Can I get a library card if I live in Shelbyville?"
    ask(patron, question, name="Pat", place="62704")
    state = patron.locator("#state-line")
    expect(state).to_contain_text("Waiting for a librarian from our network")
    expect(patron.locator("#messages")).to_have_attribute("role", "log")

    # The desk gets the offer, with the count in the tab title.
    offer = desk.locator(".queue-item", has_text=question)
    expect(offer).to_be_visible()
    expect(offer).to_contain_text("Springfield Public Library")
    expect(desk).to_have_title("(1) refdesk desk")
    screenshot(desk, "desk-offer")

    # Accept by keyboard.
    offer.get_by_role("button", name=re.compile(r"^Accept")).focus()
    desk.keyboard.press("Enter")
    tab = desk.get_by_role("tab", name=re.compile("Pat"))
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(desk).to_have_title("refdesk desk")
    expect(state).to_have_text(
        "You're chatting with a librarian from Springfield Public Library"
    )
    panel = desk.locator(".chat-panel:not([hidden])")
    expect(panel.locator(".local-info")).to_contain_text(
        "Local info: Springfield Public Library"
    )

    # The librarian types (the patron sees it) and answers; the patron replies.
    composer = desk_composer(desk)
    composer.press_sequentially("Hello Pat")
    expect(patron.locator("#typing")).to_have_text("The librarian is typing…")
    composer.fill("Hello Pat! Yes: everyone who lives in the state can get a card.")
    composer.press("Enter")
    expect(patron.locator("#messages")).to_contain_text("Hello Pat! Yes: everyone")
    expect(patron.locator("#messages .message", has_text="Hello Pat!")).to_contain_text(
        "Marge"
    )

    patron.get_by_label("Message", exact=True).fill(
        "Great, thanks!\nDo I need a photo ID?"
    )
    patron.get_by_label("Message", exact=True).press("Enter")
    expect(panel.locator(".messages")).to_contain_text("Do I need a photo ID?")
    expect(patron.locator("#messages .pending")).to_have_count(0)
    composer.fill("Yes, a photo ID and proof of address.")
    composer.press("Enter")
    expect(patron.locator("#messages")).to_contain_text("proof of address")
    screenshot(desk, "desk-chat", full_page=True)
    screenshot(patron, "patron-chat")

    # A reload resumes the same chat with the full history, in order.
    patron.reload()
    expect(state).to_have_text(
        "You're chatting with a librarian from Springfield Public Library"
    )
    bodies = patron.locator("#messages .message .body")
    expect(bodies).to_have_count(4)
    assert bodies.all_inner_texts() == [
        question,
        "Hello Pat! Yes: everyone who lives in the state can get a card.",
        "Great, thanks!\nDo I need a photo ID?",
        "Yes, a photo ID and proof of address.",
    ]

    # The librarian closes with an outcome; the patron sees the end.
    panel.get_by_label("Outcome", exact=True).select_option("answered")
    panel.get_by_label("Tags").fill("cards, residency")
    panel.get_by_role("button", name="Close chat").click()
    expect(state).to_have_text("This chat has ended. Thank you for asking!")
    expect(patron.get_by_role("button", name="Ask another question")).to_be_visible()
    expect(patron.locator("#composer")).to_be_hidden()
    expect(panel.locator("[data-ref=closedText]")).to_have_text(
        "You closed this chat: answered."
    )
    expect(tab).to_contain_text("(closed)")
    screenshot(patron, "patron-closed")
    screenshot(desk, "desk-closed")
    assert real_errors(patron) == []
    assert real_errors(desk) == []


def test_widget_on_member_site_opens_by_keyboard_and_waits(
    new_page, make_library, make_librarian, celery_worker, screenshot, live_server
):
    springfield = make_library("springfield")
    # The demo "member site" is served by refdesk itself, so register its origin.
    WidgetOrigin.objects.create(library=springfield, origin=live_server.url)
    desk = new_page("desk")
    open_desk(desk, make_librarian(springfield))

    with urllib.request.urlopen(f"{live_server.url}/widget/springfield/") as response:
        policy = response.headers["Content-Security-Policy"]
        assert policy.startswith("frame-ancestors ")
        assert set(policy.split()[1:]) == {
            "https://www.springfieldlibrary.example",
            live_server.url,
        }
        assert response.headers["X-Frame-Options"] is None
    with urllib.request.urlopen(f"{live_server.url}/widget.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")

    site = new_page("member-site", viewport={"width": 1100, "height": 800})
    site.goto("/demo/springfield/")
    toggle = site.get_by_role("button", name="Ask a librarian")
    expect(toggle).to_have_attribute("aria-expanded", "false")

    for _ in range(30):
        site.keyboard.press("Tab")
        if site.evaluate(
            "() => document.activeElement?.dataset?.refdeskWidget || null"
        ):
            break
    expect(toggle).to_be_focused()
    site.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")

    panel = site.frame_locator("iframe[title^='Ask a librarian']")
    question = panel.get_by_label("Your question", exact=True)
    expect(question).to_be_focused()
    site.keyboard.type("Do you have the new Ann Patchett novel?")
    for _ in range(4):  # name, email, home library, then the button
        site.keyboard.press("Tab")
    expect(panel.get_by_role("button", name="Start chat")).to_be_focused()
    site.keyboard.press("Enter")
    expect(panel.locator("#state-line")).to_contain_text(
        "Waiting for a librarian from our network"
    )
    expect(panel.get_by_label("Message", exact=True)).to_be_focused()
    expect(desk.locator(".queue-item", has_text="Ann Patchett")).to_be_visible()
    screenshot(site, "widget-waiting")

    # Escape closes the panel and gives focus back to the button.
    site.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    assert real_errors(site) == []


def test_html_in_patron_text_is_shown_as_text_on_the_desk(
    new_page, make_library, make_librarian, celery_worker, screenshot
):
    springfield = make_library("springfield")
    desk = new_page("desk")
    open_desk(desk, make_librarian(springfield))

    patron = new_page("patron", viewport=MOBILE)
    question = "<img src=x onerror=window.__xss=1>"
    name = "<script>window.__xss=2</script>"
    ask(patron, question, name=name)

    offer = desk.locator(".queue-item").first
    expect(offer.locator(".question")).to_have_text(question)
    offer.get_by_role("button", name=re.compile(r"^Accept")).click()
    panel = desk.locator(".chat-panel:not([hidden])")
    expect(panel.locator(".messages .message .body").first).to_have_text(question)
    expect(desk.get_by_role("tab")).to_contain_text(name)

    message = '<b onmouseover="window.__xss=3">bold</b><script>window.__xss=4</script>'
    patron.get_by_label("Message", exact=True).fill(message)
    patron.get_by_label("Message", exact=True).press("Enter")
    expect(panel.locator(".messages")).to_contain_text(message)

    reply = "<img src=y onerror=window.__xss=5> right back"
    desk_composer(desk).fill(reply)
    desk_composer(desk).press("Enter")
    expect(patron.locator("#messages")).to_contain_text(reply)
    desk.locator(".messages .message", has_text="bold").hover()

    for page in (desk, patron):
        assert page.evaluate("() => window.__xss") is None
        assert page.locator(".messages img, .messages script, .messages b").count() == 0
    screenshot(desk, "desk-html-as-text")


def test_librarian_works_two_chats_in_tabs_by_keyboard(
    new_page, make_library, make_librarian, celery_worker
):
    springfield = make_library("springfield")
    desk = new_page("desk")
    open_desk(desk, make_librarian(springfield, display_name="Marge"))

    ada = new_page("ada", viewport=MOBILE)
    ask(ada, "Where are the atlases?", name="Ada")
    bob = new_page("bob", viewport=MOBILE)
    ask(bob, "Do you lend telescopes?", name="Bob")
    expect(desk.locator(".queue-item")).to_have_count(2)
    expect(desk).to_have_title("(2) refdesk desk")

    for question in ("Where are the atlases?", "Do you lend telescopes?"):
        desk.locator(".queue-item", has_text=question).get_by_role(
            "button", name=re.compile(r"^Accept")
        ).click()
        expect(desk.locator(".queue-item", has_text=question)).to_have_count(0)
    tabs = desk.get_by_role("tab")
    expect(tabs).to_have_count(2)
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(bob.locator("#chat-view")).to_have_attribute("data-status", "active")

    # Arrow keys move between the chats; each composer talks to its own patron.
    tabs.nth(1).focus()
    desk.keyboard.press("ArrowLeft")
    expect(tabs.nth(0)).to_be_focused()
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    desk_composer(desk).fill("Atlases are on the second floor.")
    desk_composer(desk).press("Enter")
    expect(ada.locator("#messages")).to_contain_text("second floor")

    # A message for the chat in the other tab marks that tab unread.
    bob.get_by_label("Message", exact=True).fill("Hello?")
    bob.get_by_label("Message", exact=True).press("Enter")
    expect(tabs.nth(1).locator(".unread")).to_contain_text("1")
    tabs.nth(0).focus()
    desk.keyboard.press("End")
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(tabs.nth(1).locator(".unread")).to_be_hidden()
    expect(desk.locator(".chat-panel:not([hidden]) .messages")).to_contain_text(
        "Hello?"
    )
    assert "second floor" not in bob.locator("#messages").inner_text()


def test_patron_reconnects_after_a_drop_and_resends_unacknowledged_messages(
    new_page, make_library, make_librarian, celery_worker
):
    springfield = make_library("springfield")
    desk = new_page("desk")
    open_desk(desk, make_librarian(springfield))

    patron = new_page("patron", viewport=MOBILE)
    sockets = []

    def through(route):
        route.connect_to_server()
        sockets.append(route)

    patron.route_web_socket(re.compile(r"/ws/chat/"), through)
    ask(patron, "Is the library open on Sunday?")
    desk.locator(".queue-item").first.get_by_role(
        "button", name=re.compile(r"^Accept")
    ).click()
    expect(patron.locator("#chat-view")).to_have_attribute("data-status", "active")
    assert len(sockets) == 1

    sockets[0].close(code=4000, reason="network dropped")
    expect(patron.locator("#connection-line")).to_contain_text("Reconnecting")
    patron.get_by_label("Message", exact=True).fill("Still there?")
    patron.get_by_label("Message", exact=True).press("Enter")
    expect(patron.locator("#messages .pending")).to_contain_text("sending…")

    expect(patron.locator("#connection-line")).to_be_hidden()
    assert len(sockets) == 2
    assert "after_seq=1" in sockets[1].url
    panel = desk.locator(".chat-panel:not([hidden])")
    expect(panel.locator(".messages")).to_contain_text("Still there?")
    expect(patron.locator("#messages .pending")).to_have_count(0)
    expect(panel.locator(".messages .message", has_text="Still there?")).to_have_count(
        1
    )
    expect(patron.locator("#messages .message", has_text="Still there?")).to_have_count(
        1
    )
