"""The ticket endpoints end to end: the patron follow-up and questions API, the
staff ticket API (session, scoping), the inbound mail gateway, `ingest_email`."""

import asyncio
import io
import json
import sys
from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client

from chat import events
from chat import services as chat_services
from chat.models import Conversation
from libraries import presence
from refdesk.asgi import application
from tests.tickets.conftest import eml, thread_placeholders
from tickets import services
from tickets.models import InboundEmail, Ticket

SPRINGFIELD_SITE = "https://www.springfieldlibrary.example"
# Async tests reach the database from asgiref's executor thread: give that
# thread's connection back at the end, or the test database cannot be dropped.
close_connections = sync_to_async(connections.close_all)


@pytest.fixture(autouse=True)
def clean_rate_limits():
    """Forget this run's rate-limit counters (only keys under this run's prefix)."""

    def delete() -> None:
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=cache.make_key("ratelimit:*")))
        if keys:
            client.delete(*keys)

    delete()
    yield
    delete()


def post_json(client: Client, path: str, body, token: str | None = None, **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(
        path, data=json.dumps(body), content_type="application/json", **headers
    )


def follow_up_path(conversation) -> str:
    return f"/api/v1/conversations/{conversation.id}/follow-up"


# Follow-up
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_follow_up_creates_once_then_answers_with_the_same_ticket(springfield, client):
    conversation, token = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?"
    )

    first = post_json(
        client, follow_up_path(conversation), {"email": "p@example.org"}, token
    )
    again = post_json(
        client, follow_up_path(conversation), {"email": "p@example.org"}, token
    )

    assert first.status_code == 201
    body = first.json()
    ticket = Ticket.objects.get()
    assert body == {
        "ticket": {"reference": ticket.reference, "due_by": ticket.due_by.isoformat()}
    }
    assert datetime.fromisoformat(body["ticket"]["due_by"]).utcoffset() is not None
    assert (again.status_code, again.json()) == (200, body)


@pytest.mark.django_db
def test_follow_up_of_a_chat_that_became_a_ticket_by_itself_is_200(springfield, client):
    conversation, token = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?", email="p@example.org"
    )
    ticket = Ticket.objects.get(conversation=conversation)

    response = post_json(
        client, follow_up_path(conversation), {"email": "p@example.org"}, token
    )

    assert response.status_code == 200
    assert response.json()["ticket"]["reference"] == ticket.reference


@pytest.mark.django_db
@pytest.mark.parametrize("end", ["active", "closed"])
def test_follow_up_of_an_active_or_closed_chat_is_409(
    springfield, make_librarian, client, end
):
    marge = make_librarian(springfield)
    presence.touch(
        library_id=springfield.id, librarian_id=marge.id, socket_id="d", available=True
    )
    conversation, token = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?"
    )
    chat_services.accept_conversation(conversation_id=conversation.id, librarian=marge)
    if end == "closed":
        chat_services.close_conversation(
            conversation_id=conversation.id, librarian=marge
        )

    response = post_json(
        client, follow_up_path(conversation), {"email": "p@example.org"}, token
    )

    assert response.status_code == 409
    assert response.json()["code"] == "state_conflict"
    assert not Ticket.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token", "body", "status", "code"),
    [
        pytest.param(
            None, {"email": "p@example.org"}, 401, "unauthenticated", id="no-token"
        ),
        pytest.param(
            "wrong", {"email": "p@example.org"}, 403, "forbidden", id="bad-token"
        ),
        pytest.param(
            "ok", {"email": "not-an-email"}, 400, "validation_error", id="bad-email"
        ),
        pytest.param("ok", {}, 400, "validation_error", id="no-email"),
        pytest.param(
            "ok", {"email": 7}, 400, "validation_error", id="email-not-a-string"
        ),
        pytest.param(None, {"email": "nope"}, 401, "unauthenticated", id="token-first"),
    ],
)
def test_follow_up_refusals(springfield, client, token, body, status, code):
    conversation, real = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?"
    )
    token = real if token == "ok" else token

    response = post_json(client, follow_up_path(conversation), body, token)

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_follow_up_with_a_form_body_is_415(springfield, client):
    conversation, token = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?"
    )
    response = client.post(
        follow_up_path(conversation),
        {"email": "p@example.org"},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert (response.status_code, response.json()["code"]) == (
        415,
        "unsupported_media_type",
    )


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_follow_up_while_waiting_withdraws_the_chat_from_desks(
    springfield, make_librarian
):
    marge = await sync_to_async(make_librarian)(springfield)
    presence.touch(
        library_id=springfield.id, librarian_id=marge.id, socket_id="d", available=True
    )
    conversation, token = await sync_to_async(chat_services.start_conversation)(
        library_slug="springfield", question="Moby-Dick?"
    )
    assert conversation.status == "waiting"
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.library_desks_group(springfield.id), channel)

    response = await sync_to_async(post_json)(
        Client(), follow_up_path(conversation), {"email": "p@example.org"}, token
    )

    assert response.status_code == 201
    event = await asyncio.wait_for(layer.receive(channel), timeout=5)
    assert event == {
        "type": "queue.withdraw",
        "conversation": str(conversation.id),
        "reason": "offline",
    }
    refreshed = await Conversation.objects.aget(pk=conversation.pk)
    assert refreshed.status == "offline"
    await layer.group_discard(events.library_desks_group(springfield.id), channel)
    await close_connections()


# Questions
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_question_is_201_with_the_reference_and_due_time(springfield, client):
    response = post_json(
        client,
        "/api/v1/libraries/springfield/questions",
        {
            "question": "Do you have Moby-Dick?",
            "email": "pat@example.org",
            "name": "Pat",
        },
        HTTP_ORIGIN=SPRINGFIELD_SITE,
    )

    assert response.status_code == 201
    ticket = Ticket.objects.get()
    assert response.json() == {
        "ticket": {"reference": ticket.reference, "due_by": ticket.due_by.isoformat()}
    }
    assert response["Access-Control-Allow-Origin"] == SPRINGFIELD_SITE
    assert (ticket.source, ticket.patron_name) == ("question_form", "Pat")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"question": "Q?"}, "email", id="no-email"),
        pytest.param(
            {"question": "   ", "email": "p@example.org"}, "question", id="blank"
        ),
        pytest.param(
            {"question": "x" * 2001, "email": "p@example.org"},
            "question",
            id="too-long",
        ),
    ],
)
def test_a_question_is_validated_per_field(springfield, client, body, field):
    response = post_json(client, "/api/v1/libraries/springfield/questions", body)

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]


@pytest.mark.django_db
def test_questions_to_an_unknown_library_are_404(springfield, client):
    response = post_json(
        client,
        "/api/v1/libraries/nowhere/questions",
        {"question": "Q", "email": "a@b.cd"},
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.django_db
def test_questions_are_rate_limited_per_address(springfield, client, settings):
    settings.REFDESK_CHAT_RATE_PER_MINUTE = 2
    body = {"question": "Q?", "email": "p@example.org"}
    codes = [
        post_json(client, "/api/v1/libraries/springfield/questions", body).status_code
        for _ in range(3)
    ]
    assert codes == [201, 201, 429]


# Transcript
# ----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_ticketed_chat_sends_its_transcript_on_the_ticket(springfield, client):
    conversation, token = chat_services.start_conversation(
        library_slug="springfield", question="Moby-Dick?", email="p@example.org"
    )
    path = f"/api/v1/conversations/{conversation.id}/transcript"

    response = post_json(client, path, {"email": "p@example.org"}, token)

    assert (response.status_code, response.json()) == (202, {"queued": True})
    ticket = Ticket.objects.get()
    transcript = ticket.messages.get(kind="transcript")
    assert "Moby-Dick?" in transcript.full_body
    assert post_json(client, path, {"email": "p@example.org"}, "bad").status_code == 403


# Staff ticket API
# ----------------------------------------------------------------------
@pytest.fixture
def two_libraries(springfield, shelbyville, ask, marge, make_librarian):
    own = ask(springfield, question="Springfield question")
    other = ask(shelbyville, question="Shelbyville question")
    pooled = ask(shelbyville, question="Pooled question")
    Ticket.objects.filter(pk=pooled.pk).update(in_pool=True)
    return {"own": own, "other": other, "pooled": pooled}


def staff_client(librarian) -> Client:
    client = Client()
    client.force_login(librarian.user)
    return client


@pytest.mark.django_db
def test_the_ticket_list_needs_a_librarian(springfield, client):
    assert client.get("/api/v1/tickets/").status_code == 401
    user = get_user_model().objects.create_user("visitor", password="x-long-password-1")
    client.force_login(user)
    response = client.get("/api/v1/tickets/")
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


@pytest.mark.django_db
def test_a_librarian_sees_their_librarys_tickets_and_the_pool(two_libraries, marge):
    client = staff_client(marge)

    results = client.get("/api/v1/tickets/").json()["results"]

    assert {r["reference"] for r in results} == {
        two_libraries["own"].reference,
        two_libraries["pooled"].reference,
    }
    row = next(r for r in results if r["reference"] == two_libraries["own"].reference)
    assert set(row) >= {
        "reference",
        "library",
        "status",
        "subject",
        "patron_name",
        "created_at",
        "due_by",
        "claimed_by",
    }
    assert (row["library"], row["status"], row["claimed_by"]) == (
        "springfield",
        "new",
        None,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("?pool=1", {"pooled"}, id="pool"),
        pytest.param("?library=shelbyville", {"pooled"}, id="library"),
        pytest.param("?status=answered", set(), id="status"),
        pytest.param("?status=new&library=springfield", {"own"}, id="combined"),
    ],
)
def test_the_ticket_list_filters(two_libraries, marge, query, expected):
    results = staff_client(marge).get(f"/api/v1/tickets/{query}").json()["results"]
    assert {r["reference"] for r in results} == {
        two_libraries[key].reference for key in expected
    }


@pytest.mark.django_db
def test_an_unknown_status_filter_is_400(two_libraries, marge):
    response = staff_client(marge).get("/api/v1/tickets/?status=lost")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")


@pytest.mark.django_db
def test_ticket_detail_has_the_thread_oldest_first_with_visible_bodies(answered, marge):
    ticket, reply = answered
    services.file_inbound_email(
        eml("gmail_reply.eml", **thread_placeholders(ticket, reply))
    )
    services.add_internal_note(
        reference=ticket.reference, librarian=marge, body="Renew?"
    )

    body = staff_client(marge).get(f"/api/v1/tickets/{ticket.reference}").json()

    assert body["reference"] == ticket.reference
    assert body["status"] == "open"
    assert [m["direction"] for m in body["messages"]] == [
        "inbound",
        "outbound",
        "outbound",
        "inbound",
        "internal",
    ]
    patron_reply = body["messages"][3]
    assert patron_reply["body"].endswith(
        "Could I also renew the audiobook I have out?\n\nPat"
    )
    assert "wrote:" not in patron_reply["body"]
    assert set(patron_reply) >= {"direction", "author", "body", "created_at"}


@pytest.mark.django_db
def test_another_librarys_ticket_detail_is_403_and_unknown_is_404(two_libraries, marge):
    client = staff_client(marge)
    other = client.get(f"/api/v1/tickets/{two_libraries['other'].reference}")
    pooled = client.get(f"/api/v1/tickets/{two_libraries['pooled'].reference}")
    missing = client.get("/api/v1/tickets/RD-99-999999")
    assert (other.status_code, pooled.status_code, missing.status_code) == (
        403,
        200,
        404,
    )


# Inbound mail gateway
# ----------------------------------------------------------------------
INBOUND = "/api/v1/inbound-email"


def post_raw(path: str, raw: bytes, token: str | None = None):
    headers = [(b"host", b"localhost"), (b"content-type", b"message/rfc822")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return HttpCommunicator(application, "POST", path, body=raw, headers=headers)


async def asgi_post(raw: bytes, token: str | None = None) -> tuple[int, dict]:
    communicator = post_raw(INBOUND, raw, token)
    response = await communicator.get_response(timeout=20)
    return response["status"], json.loads(response["body"] or b"{}")


@pytest.mark.django_db
def test_the_inbound_endpoint_is_off_without_a_secret(springfield, settings, client):
    settings.REFDESK_INBOUND_SECRET = ""
    response = client.post(
        INBOUND, eml("new_question_springfield.eml"), "message/rfc822"
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert not InboundEmail.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        pytest.param(None, 401, "unauthenticated", id="missing"),
        pytest.param("guess", 403, "forbidden", id="wrong"),
    ],
)
def test_the_inbound_endpoint_needs_the_shared_secret(
    springfield, settings, client, token, status, code
):
    settings.REFDESK_INBOUND_SECRET = "s3cret-for-tests"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = client.post(
        INBOUND, eml("new_question_springfield.eml"), "message/rfc822", **headers
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not InboundEmail.objects.exists()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_inbound_endpoint_files_mail_over_64_kib_and_refuses_over_its_limit(
    springfield, settings
):
    settings.REFDESK_INBOUND_SECRET = "s3cret-for-tests"
    big = eml("new_question_springfield.eml").replace(
        b"I am 10.", b"I am 10.\n" + b"Skateboards are great. " * 9000
    )
    assert len(big) > 200_000

    status, body = await asgi_post(big, "s3cret-for-tests")

    assert status == 201
    ticket = await Ticket.objects.select_related("library").aget()
    assert body == {"id": body["id"], "status": "filed", "ticket": ticket.reference}
    assert ticket.library.slug == "springfield"

    settings.REFDESK_INBOUND_MAX_BYTES = 100_000
    status, body = await asgi_post(big, "s3cret-for-tests")
    assert (status, body["code"]) == (413, "too_large")
    assert await InboundEmail.objects.acount() == 1
    await close_connections()


@pytest.mark.django_db
def test_the_inbound_endpoint_keeps_what_it_cannot_file(springfield, settings, client):
    settings.REFDESK_INBOUND_SECRET = "s3cret-for-tests"
    response = client.post(
        INBOUND,
        eml("garbage.eml"),
        "message/rfc822",
        HTTP_AUTHORIZATION="Bearer s3cret-for-tests",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "needs_attention"
    assert InboundEmail.objects.get().status == "needs_attention"


# ingest_email
# ----------------------------------------------------------------------
def ingest(monkeypatch, raw: bytes) -> str:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    call_command("ingest_email", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_ingest_email_files_a_message_from_stdin(springfield, monkeypatch):
    output = ingest(monkeypatch, eml("new_question_springfield.eml"))
    ticket = Ticket.objects.get()
    assert output.strip().endswith(f"filed {ticket.reference}")


@pytest.mark.django_db
def test_ingest_email_succeeds_when_the_message_needs_attention(
    springfield, monkeypatch
):
    output = ingest(monkeypatch, eml("garbage.eml"))
    assert "needs_attention" in output
    assert InboundEmail.objects.get().status == "needs_attention"


@pytest.mark.django_db
def test_ingest_email_fails_with_nothing_to_store(springfield, monkeypatch):
    with pytest.raises(CommandError):
        ingest(monkeypatch, b"")
