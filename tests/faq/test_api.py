"""The FAQ endpoints end to end through Django's test client."""

import pytest

from chat import services as chat_services
from chat.models import ConversationStatus, Outcome, Sender
from faq import services
from faq.models import Answer
from libraries.models import LocalInfoSection, Role, WidgetOrigin
from tests.faq.conftest import HOSTILE_MARKDOWN, assert_harmless, csrf_headers
from tickets.models import Ticket

SITE = "https://www.springfieldlibrary.example"


def faq_url(slug: str) -> str:
    return f"/api/v1/libraries/{slug}/faq"


# GET /api/v1/libraries/{slug}/faq
# ----------------------------------------------------------------------
def test_library_faq_suggests_the_springfield_card_answer(client, demo_faq):
    expected = demo_faq("Can I get a library card if I live out of state?")

    response = client.get(
        faq_url("springfield"), {"q": "library card out of state"}, HTTP_ORIGIN=SITE
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SITE
    results = response.json()["results"]
    assert results[0] == {
        "id": expected.pk,
        "question": expected.question,
        "answer": expected.answer,
        "answer_html": results[0]["answer_html"],
        "url": f"http://testserver/faq/springfield/{expected.pk}/",
        "library": "springfield",
    }
    assert "<strong>3-month visitor card</strong>" in results[0]["answer_html"]
    assert set(results[0]) >= {"id", "question", "answer", "url"}  # PROTOCOL.md


def test_consortium_answers_link_to_the_asking_librarys_page(client, demo_faq):
    results = client.get(faq_url("ogdenville"), {"q": "reset my PIN"}).json()["results"]

    assert results[0]["library"] is None
    assert results[0]["url"].endswith(f"/faq/ogdenville/{results[0]['id']}/")


def test_other_origins_get_no_cors_header(client, demo_faq):
    response = client.get(
        faq_url("springfield"), {"q": "card"}, HTTP_ORIGIN="https://evil.example"
    )

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_registered_widget_origin_gets_cors(client, demo_faq, demo_libraries):
    WidgetOrigin.objects.create(
        library=demo_libraries["springfield"], origin="https://catalog.example"
    )

    response = client.options(
        faq_url("springfield"), HTTP_ORIGIN="https://catalog.example"
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://catalog.example"


def test_without_a_query_the_most_useful_answers_come(client, demo_faq):
    wifi = demo_faq("Is there free Wi-Fi at the library?")
    Answer.objects.filter(pk=wifi.pk).update(self_served_count=3)

    results = client.get(faq_url("shelbyville"), {"limit": "2"}).json()["results"]

    assert len(results) == 2
    assert results[0]["id"] == wifi.pk


def test_staff_only_answers_never_reach_patrons(client, demo_faq):
    results = client.get(faq_url("springfield"), {"q": "legal medical advice"}).json()

    assert all(
        r["question"] != "Patron asks for legal or medical advice"
        for r in results["results"]
    )


def test_unknown_library_and_bad_limit(client, demo_faq):
    assert (
        client.get(faq_url("capital-city"), {"q": "card"}).json()["code"] == "not_found"
    )
    bad = client.get(faq_url("springfield"), {"q": "card", "limit": "500"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "validation_error"
    assert client.post(faq_url("springfield")).status_code == 405


def test_faq_search_is_rate_limited_per_address(client, demo_faq, settings):
    settings.REFDESK_FAQ_RATE_PER_MINUTE = 3

    statuses = [
        client.get(faq_url("springfield"), {"q": "card"}).status_code for _ in range(4)
    ]

    assert statuses == [200, 200, 200, 429]
    limited = client.get(faq_url("springfield"), {"q": "card"})
    assert limited.json()["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1


def test_faq_api_costs_a_fixed_number_of_queries(
    client, demo_faq, django_assert_max_num_queries
):
    client.get(faq_url("springfield"))  # a process's first request loads the libraries
    with django_assert_max_num_queries(1):  # the search (the library is in memory)
        response = client.get(
            faq_url("springfield"), {"q": "library card out of state"}
        )
    assert len(response.json()["results"]) >= 3


def test_hostile_markdown_is_harmless_in_the_api(client, demo_libraries):
    services.save_answer(
        answer=Answer(
            question="How do I stay safe online?",
            answer=HOSTILE_MARKDOWN,
            library=demo_libraries["springfield"],
            is_published=True,
        )
    )

    result = client.get(faq_url("springfield"), {"q": "safe online"}).json()["results"][
        0
    ]

    assert_harmless(result["answer_html"])
    assert (
        '<a href="https://example.org" rel="noopener noreferrer">good link</a>'
        in (result["answer_html"])
    )
    assert "&lt;script&gt;" in result["answer_html"]  # shown as text, not run
    assert result["answer"] == HOSTILE_MARKDOWN  # the source, for plain-text widgets


# POST /api/v1/faq/{id}/opened
# ----------------------------------------------------------------------
def test_opening_an_answer_is_counted(client, demo_faq):
    answer = demo_faq("Is there free Wi-Fi at the library?")

    first = client.post(f"/api/v1/faq/{answer.pk}/opened")
    client.post(f"/api/v1/faq/{answer.pk}/opened")

    assert first.status_code == 200
    assert first.json() == {"id": answer.pk, "counted": True}
    answer.refresh_from_db()
    assert answer.open_count == 2


def test_opening_a_staff_only_or_unknown_answer_is_not_found(client, demo_faq):
    staff_only = demo_faq("Handling an abusive or spam chat")

    assert client.post(f"/api/v1/faq/{staff_only.pk}/opened").status_code == 404
    assert client.post("/api/v1/faq/999999/opened").status_code == 404
    staff_only.refresh_from_db()
    assert staff_only.open_count == 0


def test_opens_are_rate_limited(client, demo_faq, settings):
    settings.REFDESK_FAQ_RATE_PER_MINUTE = 2
    answer = demo_faq("Is there free Wi-Fi at the library?")

    statuses = [
        client.post(f"/api/v1/faq/{answer.pk}/opened").status_code for _ in range(3)
    ]

    assert statuses == [200, 200, 429]


# POST /api/v1/conversations/{id}/self-served
# ----------------------------------------------------------------------
def self_served(client, conversation, token: str | None, body: dict | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.post(
        f"/api/v1/conversations/{conversation.pk}/self-served",
        body or {},
        content_type="application/json",
        **headers,
    )


def test_self_served_closes_a_waiting_chat_and_counts_the_answer(
    client, demo_faq, demo_libraries, waiting_chat
):
    answer = demo_faq("Can I get a library card if I live out of state?")
    conversation, token, _ = waiting_chat(
        demo_libraries["springfield"], question="library card out of state?"
    )

    response = self_served(client, conversation, token, {"answer": answer.pk})

    assert response.status_code == 200
    assert response.json() == {
        "id": str(conversation.pk),
        "status": "closed",
        "outcome": "self_served",
    }
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.outcome == Outcome.SELF_SERVED
    assert conversation.closed_by == "patron"
    assert conversation.escalate_at is None
    assert conversation.steps.get().left_because == "self_served"
    answer.refresh_from_db()
    assert answer.self_served_count == 1
    assert not Ticket.objects.filter(conversation=conversation).exists()


def test_self_served_without_an_answer_id_still_ends_the_wait(
    client, demo_libraries, waiting_chat
):
    conversation, token, _ = waiting_chat(demo_libraries["springfield"])

    response = self_served(client, conversation, token)

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.outcome == Outcome.SELF_SERVED


def test_self_served_needs_the_conversation_token(client, demo_libraries, waiting_chat):
    conversation, token, _ = waiting_chat(demo_libraries["springfield"])

    missing = self_served(client, conversation, None)
    wrong = self_served(client, conversation, token[:-2] + "xx")

    assert (missing.status_code, missing.json()["code"]) == (401, "unauthenticated")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "forbidden")
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.WAITING


def test_self_served_refuses_an_active_chat(client, demo_libraries, waiting_chat):
    conversation, token, librarian = waiting_chat(demo_libraries["springfield"])
    chat_services.accept_conversation(
        conversation_id=conversation.pk, librarian=librarian
    )

    response = self_served(client, conversation, token)

    assert (response.status_code, response.json()["code"]) == (409, "state_conflict")
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.ACTIVE


def test_self_served_with_another_librarys_answer_is_refused(
    client, demo_faq, demo_libraries, waiting_chat
):
    shelbyville_answer = demo_faq("Is the bookmobile running?")
    conversation, token, _ = waiting_chat(demo_libraries["springfield"])

    response = self_served(
        client, conversation, token, {"answer": shelbyville_answer.pk}
    )
    bad = self_served(client, conversation, token, {"answer": "12"})

    assert response.status_code == 404
    assert bad.status_code == 400
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.WAITING


# GET /api/v1/desk/suggestions
# ----------------------------------------------------------------------
def test_suggestions_show_the_patrons_library_answers_and_card(
    demo_faq, demo_libraries, desk_client, waiting_chat, django_assert_max_num_queries
):
    springfield = demo_libraries["springfield"]
    LocalInfoSection.objects.create(
        library=springfield,
        kind="cards",
        title="Library cards and non-residents",
        body="Out-of-state visitors get a free 3-month *visitor card*.",
    )
    conversation, _, _ = waiting_chat(
        springfield, question="Can I get a library card if I live out of state?"
    )
    client, _ = desk_client(demo_libraries["shelbyville"])  # answers overflow too
    conversation.queue = "overflow"
    conversation.save(update_fields=["queue"])

    with django_assert_max_num_queries(12):
        response = client.get(
            "/api/v1/desk/suggestions", {"conversation": str(conversation.pk)}
        )

    assert response.status_code == 200
    body = response.json()
    assert body["library"] == {"slug": "springfield", "name": springfield.name}
    assert body["question"] == "Can I get a library card if I live out of state?"
    top = body["faq"][0]
    assert top["question"] == "Can I get a library card if I live out of state?"
    assert top["library"] == "springfield"
    assert top["is_public"] is True
    assert top["url"] == f"/faq/springfield/{top['id']}/"
    assert body["local_info"][0]["title"] == "Library cards and non-residents"
    assert body["local_info"][0]["library"]["slug"] == "springfield"
    assert "<mark>" in body["local_info"][0]["snippet_html"]


def test_suggestions_include_staff_only_answers(
    demo_faq, demo_libraries, desk_client, waiting_chat
):
    conversation, _, _ = waiting_chat(
        demo_libraries["springfield"], question="I need legal advice about my lease"
    )
    client, _ = desk_client(demo_libraries["springfield"])

    faq = client.get(
        "/api/v1/desk/suggestions", {"conversation": str(conversation.pk)}
    ).json()["faq"]

    assert faq[0]["question"] == "Patron asks for legal or medical advice"
    assert faq[0]["is_public"] is False
    assert faq[0]["url"] is None


def test_suggestions_are_harmless_with_hostile_content(
    demo_libraries, desk_client, waiting_chat
):
    springfield = demo_libraries["springfield"]
    services.save_answer(
        answer=Answer(
            question="Printing alert",
            answer=HOSTILE_MARKDOWN,
            library=springfield,
            is_public=False,
            is_published=True,
        )
    )
    LocalInfoSection.objects.create(
        library=springfield,
        title="Printing <b>alert</b>",
        body=HOSTILE_MARKDOWN + " printing",
    )
    conversation, _, _ = waiting_chat(springfield, question="printing alert click")
    client, _ = desk_client(springfield)

    body = client.get(
        "/api/v1/desk/suggestions", {"conversation": str(conversation.pk)}
    ).json()

    assert_harmless(body["faq"][0]["answer_html"])
    snippet = body["local_info"][0]["snippet_html"]
    assert_harmless(snippet)
    assert "<" not in snippet.replace("<mark>", "").replace("</mark>", "")


def test_suggestions_for_a_chat_of_another_library_are_forbidden(
    demo_libraries, desk_client, waiting_chat
):
    conversation, _, _ = waiting_chat(demo_libraries["springfield"])
    client, _ = desk_client(demo_libraries["ogdenville"])

    response = client.get(
        "/api/v1/desk/suggestions", {"conversation": str(conversation.pk)}
    )

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


def test_suggestions_need_a_valid_conversation(demo_libraries, desk_client):
    client, _ = desk_client(demo_libraries["springfield"])

    assert client.get("/api/v1/desk/suggestions").status_code == 400
    assert (
        client.get("/api/v1/desk/suggestions", {"conversation": "nope"}).status_code
        == 400
    )
    unknown = client.get(
        "/api/v1/desk/suggestions",
        {"conversation": "00000000-0000-0000-0000-000000000000"},
    )
    assert unknown.status_code == 404


# POST /api/v1/faq/drafts
# ----------------------------------------------------------------------
def _answered_chat(library, waiting_chat):
    conversation, _, librarian = waiting_chat(
        library,
        question="Hi, I'm Patricia Smith (pat@example.org, card 21234000567890). "
        "Can I renew a DVD twice?",
        name="Patricia Smith",
        email="pat@example.org",
    )
    chat_services.accept_conversation(
        conversation_id=conversation.pk, librarian=librarian
    )
    chat_services.post_message(
        conversation_id=conversation.pk,
        sender=Sender.LIBRARIAN,
        librarian=librarian,
        body="Hi Patricia! DVDs renew once. Call us at 555-0100 if it fails.",
    )
    chat_services.post_message(
        conversation_id=conversation.pk,
        sender=Sender.PATRON,
        body="Thanks! My other email is p.smith@work.example",
    )
    chat_services.post_message(
        conversation_id=conversation.pk,
        sender=Sender.LIBRARIAN,
        librarian=librarian,
        body="You can also renew online.",
    )
    return conversation, librarian


def test_draft_from_a_closed_chat_is_unpublished_and_scrubbed(
    demo_libraries, waiting_chat, desk_client
):
    from django.test import Client

    springfield = demo_libraries["springfield"]
    conversation, librarian = _answered_chat(springfield, waiting_chat)
    chat_services.close_conversation(
        conversation_id=conversation.pk, librarian=librarian
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(librarian.user)

    response = client.post(
        "/api/v1/faq/drafts",
        {"conversation": str(conversation.pk)},
        content_type="application/json",
        **csrf_headers(client),
    )

    assert response.status_code == 201
    body = response.json()
    draft = Answer.objects.get(pk=body["id"])
    assert body == {
        "id": draft.pk,
        "question": "Hi, I'm [name] ([email], card [number]). Can I renew a DVD twice?",
        "answer": "Hi [name]! DVDs renew once. Call us at [phone] if it fails.\n\n"
        "You can also renew online.",
        "library": "springfield",
        "is_published": False,
        "is_public": False,
        "admin_url": f"/admin/faq/answer/{draft.pk}/change/",
    }
    assert draft.drafted_from == f"conversation {conversation.pk}"
    assert draft.created_by == librarian.user
    for text in (draft.question, draft.answer):
        assert "Patricia" not in text
        assert "Smith" not in text
        assert "@" not in text


def test_only_a_closed_chat_becomes_a_draft(demo_libraries, waiting_chat):
    from django.test import Client

    conversation, librarian = _answered_chat(
        demo_libraries["springfield"], waiting_chat
    )
    client = Client()
    client.force_login(librarian.user)

    response = client.post(
        "/api/v1/faq/drafts",
        {"conversation": str(conversation.pk)},
        content_type="application/json",
    )

    assert (response.status_code, response.json()["code"]) == (409, "state_conflict")
    assert not Answer.objects.exists()


def test_draft_from_an_answered_ticket(demo_libraries, desk_client):
    from tickets import services as ticket_services

    ticket = ticket_services.create_ticket_from_question(
        library_slug="shelbyville",
        question="I'm Homer Simpson, 742 Evergreen, phone 217-555-0113: can I get "
        "an ILL by phone?",
        email="homer@example.org",
        name="Homer Simpson",
    )
    client, librarian = desk_client(demo_libraries["shelbyville"])
    ticket_services.claim_ticket(reference=ticket.reference, librarian=librarian)
    ticket_services.reply_to_ticket(
        reference=ticket.reference,
        librarian=librarian,
        body="Hello Homer, ILL requests are by form or email only.",
    )

    response = client.post(
        "/api/v1/faq/drafts",
        {"ticket": ticket.reference},
        content_type="application/json",
        **csrf_headers(client),
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["question"] == (
        "I'm [name], 742 Evergreen, phone [phone]: can I get an ILL by phone?"
    )
    assert body["answer"] == "Hello [name], ILL requests are by form or email only."
    assert body["library"] == "shelbyville"


def test_draft_needs_a_source(demo_libraries, desk_client):
    client, _ = desk_client(demo_libraries["springfield"])

    response = client.post(
        "/api/v1/faq/drafts",
        {},
        content_type="application/json",
        **csrf_headers(client),
    )

    assert response.status_code == 400


# Session endpoints: who may call them
# ----------------------------------------------------------------------
SESSION_ENDPOINTS = [
    ("get", "/api/v1/canned-responses/"),
    ("post", "/api/v1/canned-responses/"),
    ("delete", "/api/v1/canned-responses/1"),
    (
        "get",
        "/api/v1/desk/suggestions?conversation=00000000-0000-0000-0000-000000000000",
    ),
    ("post", "/api/v1/faq/drafts"),
    ("get", "/api/v1/local-info/search?q=cards"),
    ("post", "/api/v1/local-info/1/outdated"),
]


@pytest.mark.parametrize(("method", "url"), SESSION_ENDPOINTS)
def test_session_endpoints_refuse_anonymous_callers(client, method, url):
    response = getattr(client, method)(url, content_type="application/json")

    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


@pytest.mark.parametrize(("method", "url"), SESSION_ENDPOINTS)
def test_session_endpoints_refuse_users_who_are_not_librarians(db, client, method, url):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username="visitor", password="x-long-pw-1"
    )
    client.force_login(user)

    response = getattr(client, method)(url, content_type="application/json")

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


def test_consortium_admin_may_use_the_desk_endpoints(
    desk_client, demo_libraries, waiting_chat
):
    conversation, _, _ = waiting_chat(demo_libraries["ogdenville"])
    client, _ = desk_client(None, role=Role.CONSORTIUM_ADMIN)

    response = client.get(
        "/api/v1/desk/suggestions", {"conversation": str(conversation.pk)}
    )

    assert response.status_code == 200
