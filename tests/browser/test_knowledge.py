"""Local knowledge in Chromium (issue 6), on the real stack.

- The widget suggests FAQ answers while the patron types and while they wait;
  opening one is counted, and "This answered my question" ends the waiting chat
  as self-served, which withdraws the desk's offer.
- A Shelbyville librarian answering a Springfield patron sees Springfield's card
  (how fresh it is, today's hours, the card rules), suggestions for the
  question, searches every library's local info, inserts canned responses with
  placeholders filled (keyboard only), reports a section as outdated (the
  library's contact is emailed) and drafts an FAQ entry from the closed chat.
- Markup in FAQ answers and local info is harmless in the widget and on the desk.
"""

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from chat.models import Conversation
from faq import services as faq_services
from faq.models import Answer
from libraries.demo import seed_demo
from libraries.models import (
    Librarian,
    Library,
    LocalInfoKind,
    LocalInfoSection,
    OutdatedReport,
    WidgetOrigin,
)
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MOBILE = {"width": 390, "height": 844}
OUT_OF_STATE = "Can I get a library card if I live out of state?"


def eventually(check: Callable[[], bool], *, timeout: float = 10) -> None:
    """Wait for something the server does after answering (a count, a mail)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"still false after {timeout} s: {check.__doc__ or check}"
            )
        time.sleep(0.1)


def open_desk(page: Page, librarian: Librarian) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username", exact=True).fill(librarian.user.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/desk/")
    expect(page.locator("body")).to_have_attribute("data-desk", "ready")


def real_errors(page: Page) -> list[str]:
    return [e for e in page.errors if "favicon" not in e]  # type: ignore[attr-defined]


def demo_librarian(username: str) -> Librarian:
    return Librarian.objects.select_related("user", "library").get(
        user__username=username
    )


def assert_no_xss(page: Page) -> None:
    assert page.evaluate("() => window.__xss") is None


# ----------------------------------------------------------------------
def test_widget_suggests_answers_counts_opens_and_self_serves(
    new_page, live_server, screenshot
):
    seed_demo(always_open=True, password=PASSWORD)
    springfield = Library.objects.get(slug="springfield")
    WidgetOrigin.objects.create(library=springfield, origin=live_server.url)
    answer = Answer.objects.get(library=springfield, question=OUT_OF_STATE)
    assert answer.open_count == 0

    # Only a Shelbyville librarian is on: the chat reaches them as overflow.
    desk = new_page("desk")
    open_desk(desk, demo_librarian("shelbyville-1"))

    site = new_page("member-site", viewport=MOBILE)
    site.goto("/demo/springfield/")
    site.get_by_role("button", name="Ask a librarian").click()
    widget = site.frame_locator("iframe[title^='Ask a librarian']")
    question = widget.get_by_label("Your question", exact=True)
    expect(question).to_be_focused()
    site.keyboard.type("library card out of state", delay=30)

    region = widget.get_by_role("region", name="Answers that may help")
    expect(region.locator("[aria-live=polite]")).to_have_text(
        re.compile(r"^[1-3] suggested answers?$")
    )
    first = region.locator(".suggestion").first
    toggle = first.get_by_role("button", name=OUT_OF_STATE)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    screenshot(site, "knowledge-widget-suggestions")

    # Keyboard only: Tab from the question reaches the suggestion; Enter opens it.
    site.keyboard.press("Tab")
    expect(toggle).to_be_focused()
    site.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(first.locator(".answer-body")).to_contain_text("3-month visitor card")
    expect(first.locator(".answer-body strong")).to_have_text("3-month visitor card")
    faq_link = first.get_by_role("link", name=re.compile("Open on the FAQ page"))
    expect(faq_link).to_have_attribute(
        "href", f"{live_server.url}/faq/springfield/{answer.pk}/"
    )
    screenshot(site, "knowledge-widget-answer-open")

    def opened_once():
        answer.refresh_from_db()
        return answer.open_count == 1

    eventually(opened_once)
    # Closing and opening again in the same visit is not counted twice.
    toggle.click()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")

    # The textarea stays on screen above the suggestions on a phone.
    box = widget.locator("#question").bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= MOBILE["height"]

    # Ask anyway: the question waits, and the same answers are offered again.
    widget.get_by_role("button", name="Start chat").click()
    expect(widget.locator("#state-line")).to_contain_text("Waiting for a librarian")
    offer = desk.locator(".queue-item", has_text="library card out of state")
    expect(offer).to_be_visible()

    waiting = widget.get_by_role("region", name=re.compile("While you wait"))
    expect(waiting.locator("[aria-live=polite]")).to_have_text(
        re.compile(r"suggested answers?$")
    )
    helped = waiting.locator(".suggestion", has_text=OUT_OF_STATE)
    helped.get_by_role("button", name=OUT_OF_STATE).click()
    done = helped.get_by_role("button", name="This answered my question")
    expect(done).to_be_visible()
    screenshot(site, "knowledge-widget-waiting-suggestions")
    done.focus()
    site.keyboard.press("Enter")

    ended = "Glad that helped! Your question is closed; you can ask again any time."
    expect(widget.locator("#state-line")).to_have_text(ended)
    expect(widget.locator("#state-line")).to_be_focused()
    expect(widget.locator("#announcer")).to_contain_text(ended)
    expect(done).to_be_hidden()
    expect(widget.get_by_role("button", name="Ask another question")).to_be_visible()
    expect(widget.locator("#composer")).to_be_hidden()
    # The offer is withdrawn from the desk.
    expect(offer).to_have_count(0)
    expect(desk.locator("#announcer")).to_contain_text(
        "the patron found the answer in the FAQ"
    )
    screenshot(site, "knowledge-widget-self-served")

    conversation = Conversation.objects.get(origin_library=springfield)
    assert (conversation.status, conversation.outcome) == ("closed", "self_served")
    answer.refresh_from_db()
    assert answer.open_count == 1
    assert answer.self_served_count == 1
    assert real_errors(site) == []
    assert real_errors(desk) == []


# ----------------------------------------------------------------------
def test_desk_card_suggestions_canned_search_report_and_draft(
    new_page, celery_worker, screenshot
):
    seed_demo(always_open=True, password=PASSWORD)
    springfield = Library.objects.get(slug="springfield")
    springfield.local_info_verified_at = timezone.now() - timedelta(days=120)
    springfield.save(update_fields=["local_info_verified_at"])
    cards = LocalInfoSection.objects.get(library=springfield, kind=LocalInfoKind.CARDS)
    answer = Answer.objects.get(library=springfield, question=OUT_OF_STATE)

    desk = new_page("desk", viewport={"width": 1400, "height": 1000})
    open_desk(desk, demo_librarian("shelbyville-1"))

    patron = new_page("patron", viewport=MOBILE)
    patron.goto("/ask/springfield/")
    patron.get_by_label("Your question", exact=True).fill(
        "Can I get a card? I live out of state."
    )
    patron.get_by_label("Your name").fill("Pat")
    patron.get_by_role("button", name="Start chat").click()
    expect(patron.locator("#state-line")).to_contain_text("Waiting")

    desk.locator(".queue-item", has_text="out of state").get_by_role(
        "button", name=re.compile("^Accept")
    ).click()
    panel = desk.locator(".chat-panel:not([hidden])")
    composer = panel.get_by_label("Reply to the patron", exact=True)
    expect(composer).to_be_focused()

    # Springfield's card, beside the chat: freshness, today's hours, the rules.
    card = panel.get_by_role("region", name="Local info: Springfield Public Library")
    expect(card.locator(".verified")).to_have_text("Last verified 120 days ago")
    expect(card.locator(".badge.warn")).to_have_text("may be out of date")
    expect(card.locator(".hours-today")).to_have_text("Open 24 hours today")
    rules = card.get_by_role("region", name="Library cards and non-residents")
    expect(rules).to_contain_text("Out-of-state visitors can get a free 3-month")

    # Suggestions for the question: the FAQ answer and the card section.
    suggestions = panel.get_by_role("region", name="Suggestions")
    faq_item = suggestions.locator(".suggest-faq li", has_text=OUT_OF_STATE)
    expect(faq_item).to_be_visible()
    expect(suggestions.locator(".suggest-local")).to_contain_text(
        "Library cards and non-residents"
    )
    faq_item.get_by_role("button", name=re.compile("^Insert link")).click()
    expect(composer).to_be_focused()
    expect(composer).to_have_value(
        re.compile(rf"http://127\.0\.0\.1:\d+/faq/springfield/{answer.pk}/$")
    )
    composer.fill("")

    # Canned responses, keyboard only: "/h" lists several, arrows move, Esc closes.
    composer.focus()
    composer.press_sequentially("/h")
    listbox = panel.get_by_role("listbox", name="Canned responses")
    expect(listbox).to_be_visible()
    options = listbox.get_by_role("option")
    expect(options.first).to_have_attribute("aria-selected", "true")
    assert options.count() >= 2
    first_id = options.first.get_attribute("id")
    expect(composer).to_have_attribute("aria-activedescendant", first_id)
    desk.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(composer).to_have_attribute(
        "aria-activedescendant", options.nth(1).get_attribute("id")
    )
    desk.keyboard.press("ArrowUp")
    expect(options.first).to_have_attribute("aria-selected", "true")
    desk.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    expect(composer).to_have_value("/h")
    desk.keyboard.press("Backspace")
    desk.keyboard.press("Backspace")

    composer.press_sequentially("Sure! /hou")
    expect(listbox.get_by_role("option").first).to_contain_text("/hours")
    screenshot(desk, "knowledge-desk-card-suggestions-canned", full_page=True)
    desk.keyboard.press("Enter")
    expect(listbox).to_be_hidden()
    # {library_name}, {library_hours_today} and {library_website}, filled for the
    # patron's library (not the answering librarian's), and "/hou" replaced.
    expect(composer).to_have_value(
        re.compile(
            r"^Sure! Springfield Public Library's hours today: open 24 hours\. .*"
            r"https://www\.springfieldlibrary\.example\.$"
        )
    )
    desk.keyboard.press("Enter")  # the list is closed: Enter sends
    expect(patron.locator("#messages")).to_contain_text(
        "Springfield Public Library's hours today"
    )
    expect(composer).to_have_value("")

    # Tab inserts too; the patron's name fills {patron_name}.
    composer.press_sequentially("/bye")
    expect(listbox.get_by_role("option").first).to_contain_text("/bye")
    desk.keyboard.press("Tab")
    expect(composer).to_have_value(
        "Thanks for using Springfield Public Library's chat, Pat. Come back any time!"
    )
    expect(composer).to_be_focused()
    desk.keyboard.press("Enter")
    expect(patron.locator("#messages")).to_contain_text("Pat. Come back any time!")

    # "Show in card" moves to the section.
    suggestions.locator(".suggest-local li", has_text="Library cards").get_by_role(
        "button", name=re.compile("^Show in card")
    ).click()
    expect(rules).to_be_focused()
    expect(rules).to_have_class(re.compile(r"\bflash\b"))
    expect(rules).not_to_have_class(re.compile(r"\bflash\b"), timeout=5000)

    # Staff search across every library's local info, in the sidebar.
    search = desk.get_by_label("Search every library's local info")
    search.fill("non-residents")
    search.press("Enter")
    results = desk.get_by_role("list", name="Local info search results")
    expect(results.locator("li").first).to_be_visible()
    expect(results).to_contain_text("Shelbyville Public Library")
    expect(results).to_contain_text("Ogdenville Library")
    expect(results.locator("mark").first).to_be_visible()
    expect(desk.locator("#kb-search-status")).to_contain_text("match")
    screenshot(desk, "knowledge-desk-search")

    # Report the card section as outdated: the library's contact is emailed.
    report = rules.get_by_role("button", name=re.compile("^Report outdated"))
    report.click()
    expect(report).to_have_attribute("aria-expanded", "true")
    note = rules.get_by_label("What looks outdated?")
    expect(note).to_be_focused()
    note.fill("The visitor card is now 6 months, says their website.")
    screenshot(desk, "knowledge-desk-report-form")
    rules.get_by_role("button", name="Send report").click()
    expect(rules.locator(".report-done")).to_contain_text(
        "Springfield Public Library has been told"
    )
    expect(rules.locator(".report-done")).to_be_focused()
    expect(rules.locator("form.report-form")).to_be_hidden()
    report_row = OutdatedReport.objects.get(section=cards)
    assert report_row.note == "The visitor card is now 6 months, says their website."
    assert report_row.library == springfield

    def emailed():
        return OutdatedReport.objects.filter(
            pk=report_row.pk, emailed_at__isnull=False
        ).exists()

    eventually(emailed, timeout=20)
    log = (celery_worker.tmp_path / "celery.log").read_text(errors="replace")
    assert "Outdated local info: Library cards and non-residents" in log
    assert "To: reference@springfieldlibrary.example" in log

    # Close the chat, then draft an FAQ entry from it.
    panel.get_by_role("button", name="Close chat").click()
    expect(panel.locator("[data-ref=closedText]")).to_contain_text("You closed")
    panel.get_by_role("button", name="Draft FAQ entry").click()
    result = panel.locator("[data-ref=draftResult]")
    expect(result).to_contain_text("Draft saved — a library admin can publish it")
    draft = Answer.objects.get(drafted_from__startswith="conversation ")
    assert (draft.is_published, draft.is_public) == (False, False)
    assert "Pat" not in draft.answer
    expect(
        result.get_by_role("link", name=re.compile("Open the draft"))
    ).to_have_attribute("href", f"/admin/faq/answer/{draft.pk}/change/")
    expect(
        faq_item.get_by_role("button", name=re.compile("^Insert link"))
    ).to_be_hidden()
    screenshot(desk, "knowledge-desk-closed-draft")
    assert real_errors(desk) == []
    assert real_errors(patron) == []


# ----------------------------------------------------------------------
NASTY = (
    "Cards are free. <script>window.__xss = 1</script>\n\n"
    "[click me](javascript:window.__xss=2) and "
    '<a href="javascript:window.__xss=3">raw link</a>\n\n'
    '<img src=x onerror="window.__xss=4"> '
    '![pic](x" onerror="window.__xss=5)\n\n'
    '<b onmouseover="window.__xss=6">bold</b> <iframe src="javascript:window.__xss=7">'
)


def test_markup_in_faq_and_local_info_is_harmless_in_widget_and_desk(
    new_page, make_library, make_librarian, screenshot
):
    springfield = make_library("springfield")
    faq_services.save_answer(
        answer=Answer(
            library=springfield,
            question="Zebra cards for visitors?",
            answer=NASTY,
            is_public=True,
            is_published=True,
            tags=["zebra"],
        )
    )
    LocalInfoSection.objects.create(
        library=springfield,
        kind=LocalInfoKind.CARDS,
        title="Zebra cards <script>window.__xss=8</script>",
        body=NASTY,
    )
    desk = new_page("desk")
    open_desk(desk, make_librarian(springfield))

    patron = new_page("patron", viewport=MOBILE)
    patron.goto("/ask/springfield/")
    patron.get_by_label("Your question", exact=True).fill("zebra cards")
    suggestion = patron.locator("#ask-suggestions .suggestion").first
    suggestion.get_by_role("button", name="Zebra cards for visitors?").click()
    body = suggestion.locator(".answer-body")
    expect(body).to_contain_text("Cards are free.")
    expect(body).to_contain_text("<script>")  # raw HTML is shown as text
    for link in body.locator("a").all():
        link.click()  # the javascript: targets were dropped: nothing runs
    body.hover()
    assert body.locator("script, img, iframe, b, [onerror], [onmouseover]").count() == 0
    assert body.locator("a[href^='javascript' i]").count() == 0
    assert_no_xss(patron)
    screenshot(patron, "knowledge-xss-widget")

    patron.get_by_role("button", name="Start chat").click()
    desk.locator(".queue-item").first.get_by_role(
        "button", name=re.compile("^Accept")
    ).click()
    panel = desk.locator(".chat-panel:not([hidden])")
    card = panel.locator(".local-info")
    expect(card).to_contain_text("Cards are free.")
    expect(card.locator("h4").first).to_have_text(
        "Zebra cards <script>window.__xss=8</script>"
    )
    suggestions = panel.locator(".suggest-panel")
    expect(suggestions.locator(".suggest-faq li")).to_have_count(1)
    suggestions.get_by_role(
        "button", name="Zebra cards for visitors?", exact=True
    ).click()
    expect(suggestions.locator(".suggest-answer")).to_contain_text("Cards are free.")
    expect(suggestions.locator(".suggest-local")).to_contain_text("Zebra")

    desk.get_by_label("Search every library's local info").fill("zebra")
    desk.get_by_label("Search every library's local info").press("Enter")
    expect(desk.locator("#kb-search-results li")).to_have_count(1)

    for scope in (card, suggestions, desk.locator("#kb-search-results")):
        scope.hover()
        assert (
            scope.locator("script, img, iframe, b, [onerror], [onmouseover]").count()
            == 0
        )
        assert scope.locator("a[href^='javascript' i]").count() == 0
    assert_no_xss(desk)
    screenshot(desk, "knowledge-xss-desk", full_page=True)
    assert real_errors(desk) == []
    assert real_errors(patron) == []
