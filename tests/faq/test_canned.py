"""Canned responses: placeholders filled without format strings, hours in words,
and the desk endpoint's scoping."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from faq import canned, selectors, services
from faq.models import CannedResponse, CannedScope
from libraries.models import Role, WeeklyHours

CHICAGO = ZoneInfo("America/Chicago")
VALUES = {
    "patron_name": "Pat",
    "library_name": "Springfield Public Library",
    "library_hours_today": "9 am–8 pm",
    "library_website": "https://www.springfieldlibrary.example",
    "librarian_name": "Marge",
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("Hi {patron_name}!", "Hi Pat!", id="one"),
        pytest.param(
            "{library_name} is open {library_hours_today}; see {library_website}. {librarian_name}",
            "Springfield Public Library is open 9 am–8 pm; see "
            "https://www.springfieldlibrary.example. Marge",
            id="every-placeholder",
        ),
        pytest.param("Dear {patron}", "Dear {patron}", id="unknown-left-as-is"),
        pytest.param("{0} {} {patron_name.__class__}", "{0} {} {patron_name.__class__}", id="no-format-string"),
        pytest.param("{{patron_name}} and {", "{Pat} and {", id="stray-braces"),
        pytest.param("{PATRON_NAME}", "{PATRON_NAME}", id="case-sensitive"),
    ],
)  # fmt: skip
def test_fill_placeholders(body, expected):
    assert canned.fill_placeholders(body, VALUES) == expected


def test_filled_values_are_not_filled_again():
    values = {**VALUES, "patron_name": "{library_name}"}
    assert canned.fill_placeholders("Hi {patron_name}", values) == "Hi {library_name}"


def _span(day: int, opens: tuple[int, int], closes: tuple[int, int], next_day=False):
    start = datetime(2026, 3, day, *opens, tzinfo=CHICAGO)
    end = datetime(2026, 3, day + next_day, *closes, tzinfo=CHICAGO)
    return canned.Span(start, end)


@pytest.mark.parametrize(
    ("spans", "always_open", "expected"),
    [
        pytest.param([], False, "closed today", id="closed"),
        pytest.param([_span(9, (9, 0), (20, 0))], False, "9 am–8 pm", id="one-span"),
        pytest.param(
            [_span(9, (9, 0), (12, 0)), _span(9, (13, 0), (18, 30))],
            False,
            "9 am–12 pm and 1 pm–6:30 pm",
            id="split",
        ),
        pytest.param(
            [_span(12, (12, 0), (1, 0), next_day=True)],
            False,
            "12 pm–1 am",
            id="overnight",
        ),
        pytest.param(
            [_span(9, (0, 0), (0, 0), next_day=True)], False, "open 24 hours", id="24h"
        ),
        pytest.param([], True, "open 24 hours", id="always-open"),
    ],
)
def test_describe_hours(spans, always_open, expected):
    assert canned.describe_hours(spans, always_open=always_open) == expected


def test_patron_without_a_name_is_there():
    values = canned.placeholder_values(
        patron_name="  ",
        library_name="L",
        library_website="w",
        librarian_name="M",
        hours_today="h",
    )
    assert values["patron_name"] == "there"


def test_hours_today_come_from_the_calendar_in_the_library_zone(springfield):
    springfield.always_open = False
    springfield.save(update_fields=["always_open"])
    WeeklyHours.objects.create(
        library=springfield, weekday=0, opens=time(9), closes=time(20)
    )
    # Tuesday 01:30 UTC is still Monday evening in Chicago.
    now = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)

    assert selectors.hours_today_text(springfield, now=now) == "9 am–8 pm"


# The endpoint
# ----------------------------------------------------------------------
URL = "/api/v1/canned-responses/"


@pytest.fixture
def responses(springfield, shelbyville, make_librarian):
    """Consortium, library and personal responses, and the owner of the personal one."""
    owner = make_librarian(springfield, display_name="Ned")
    make = services.save_canned_response
    make(
        response=CannedResponse(
            scope=CannedScope.CONSORTIUM,
            shortcut="hello",
            title="Greeting",
            body="Hi {patron_name}, I'm {librarian_name} from {library_name}.",
        )
    )
    make(
        response=CannedResponse(
            scope=CannedScope.CONSORTIUM,
            shortcut="hours",
            title="Today's hours",
            body="{library_name}'s hours today: {library_hours_today}.",
        )
    )
    make(
        response=CannedResponse(
            scope=CannedScope.LIBRARY,
            library=springfield,
            shortcut="card",
            title="Springfield cards",
            body="Register at {library_website}",
        )
    )
    make(
        response=CannedResponse(
            scope=CannedScope.LIBRARY,
            library=shelbyville,
            shortcut="card",
            title="Shelbyville cards",
            body="Non-residents pay $40.",
        )
    )
    make(
        response=CannedResponse(
            scope=CannedScope.PERSONAL,
            owner=owner,
            shortcut="hello-ned",
            title="Ned's hello",
            body="Howdy-doodly {patron_name}!",
        )
    )
    return owner


def test_desk_gets_visible_responses_filled_for_the_conversation(
    responses, springfield, desk_client, waiting_chat
):
    client, librarian = desk_client(springfield, display_name="Marge")
    conversation, _, _ = waiting_chat(springfield, name="Pat")

    response = client.get(URL, {"conversation": str(conversation.pk)})

    assert response.status_code == 200
    results = response.json()["results"]
    by_shortcut = {r["shortcut"]: r for r in results}
    assert set(by_shortcut) == {
        "hello",
        "hours",
        "card",
    }  # not Ned's, not Shelbyville's
    assert by_shortcut["hello"] == {
        "id": by_shortcut["hello"]["id"],
        "shortcut": "hello",
        "title": "Greeting",
        "scope": "consortium",
        "body": "Hi {patron_name}, I'm {librarian_name} from {library_name}.",
        "body_filled": "Hi Pat, I'm Marge from Springfield Public Library.",
    }
    assert by_shortcut["hours"]["body_filled"] == (
        "Springfield Public Library's hours today: open 24 hours."
    )
    assert by_shortcut["card"]["body_filled"] == (
        "Register at https://www.springfieldlibrary.example"
    )


def test_prefix_matches_shortcut_or_title_and_personal_ones_show_to_their_owner(
    responses, springfield, make_librarian
):
    found = list(selectors.canned_responses_for(librarian=responses, q="/hel"))
    assert [r.shortcut for r in found] == ["hello", "hello-ned"]
    by_title = list(selectors.canned_responses_for(librarian=responses, q="spring"))
    assert [r.shortcut for r in by_title] == ["card"]
    colleague = make_librarian(springfield)
    assert [
        r.shortcut for r in selectors.canned_responses_for(librarian=colleague, q="hel")
    ] == ["hello"]


def test_without_a_conversation_bodies_are_not_filled(
    responses, springfield, desk_client
):
    client, _ = desk_client(springfield)

    results = client.get(URL, {"q": "card"}).json()["results"]

    assert [(r["shortcut"], r["body_filled"]) for r in results] == [("card", None)]


def test_patron_without_a_name_is_greeted_as_there(
    responses, springfield, desk_client, waiting_chat
):
    client, _ = desk_client(springfield, display_name="Marge")
    conversation, _, _ = waiting_chat(springfield)

    results = client.get(URL, {"conversation": str(conversation.pk), "q": "hello"})

    assert results.json()["results"][0]["body_filled"].startswith("Hi there, I'm Marge")


def test_another_librarys_conversation_is_forbidden(
    responses, springfield, ogdenville, desk_client, waiting_chat
):
    client, _ = desk_client(ogdenville)
    conversation, _, _ = waiting_chat(springfield)  # offered to springfield only

    response = client.get(URL, {"conversation": str(conversation.pk)})

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_filling_for_a_ticket_uses_its_library_and_patron(
    responses, springfield, desk_client
):
    from tickets import services as ticket_services

    ticket = ticket_services.create_ticket_from_question(
        library_slug="springfield",
        question="Can I renew by phone?",
        email="pat@example.org",
        name="Pat",
    )
    client, _ = desk_client(springfield, display_name="Marge")

    results = client.get(URL, {"ticket": ticket.reference, "q": "hello"}).json()

    assert results["results"][0]["body_filled"] == (
        "Hi Pat, I'm Marge from Springfield Public Library."
    )


def test_librarian_creates_and_deletes_a_personal_response(
    springfield, desk_client, make_librarian
):
    from tests.faq.conftest import csrf_headers

    client, librarian = desk_client(springfield)
    headers = csrf_headers(client)

    created = client.post(
        URL,
        {"shortcut": "/My Card", "title": "My card text", "body": "Hi {patron_name}"},
        content_type="application/json",
        **headers,
    )

    assert created.status_code == 201
    body = created.json()
    assert (body["shortcut"], body["scope"]) == ("my-card", "personal")
    stored = CannedResponse.objects.get(pk=body["id"])
    assert (stored.owner, stored.library) == (librarian, springfield)
    other_client, _ = desk_client(springfield)
    other = other_client.delete(f"{URL}{stored.pk}", **csrf_headers(other_client))
    assert other.status_code == 404
    assert client.delete(f"{URL}{stored.pk}", **headers).status_code == 200
    assert not CannedResponse.objects.filter(pk=stored.pk).exists()


def test_duplicate_shortcut_in_one_scope_is_a_conflict(springfield, desk_client):
    from tests.faq.conftest import csrf_headers

    client, _ = desk_client(springfield)
    headers = csrf_headers(client)
    body = {"shortcut": "hi", "title": "Hi", "body": "Hi"}

    client.post(URL, body, content_type="application/json", **headers)
    again = client.post(URL, body, content_type="application/json", **headers)

    assert again.status_code == 409
    assert again.json()["errors"] == {
        "shortcut": ["Already used by another response in this scope."]
    }


def test_post_without_csrf_token_is_forbidden(springfield, desk_client):
    client, _ = desk_client(springfield)

    response = client.post(
        URL,
        {"shortcut": "x", "title": "x", "body": "x"},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert not CannedResponse.objects.exists()


def test_consortium_admin_without_a_library_sees_consortium_responses(
    responses, desk_client
):
    client, _ = desk_client(None, role=Role.CONSORTIUM_ADMIN)

    results = client.get(URL).json()["results"]

    assert {r["shortcut"] for r in results} == {"hello", "hours"}
