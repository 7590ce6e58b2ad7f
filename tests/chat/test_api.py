"""The patron HTTP API end to end through Django's test client (PROTOCOL.md)."""

import json
import time
import uuid
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
from channels.testing import HttpCommunicator
from django.core.cache import cache
from django.utils import timezone

from chat.models import Conversation, ConversationStatus, ConversationStep, Message
from libraries import presence
from libraries.models import (
    Closure,
    ServiceArea,
    ServiceAreaKind,
    SpecialHours,
    WidgetOrigin,
)
from refdesk.asgi import application

SPRINGFIELD_SITE = "https://www.springfieldlibrary.example"
PATRON_ADDRESS = "203.0.113.77"


@pytest.fixture(autouse=True)
def clean_rate_limits():
    """Forget this run's rate-limit counters.

    `cache.clear()` would FLUSHDB the shared Redis database and wipe every other
    run's presence, channel layer and broker keys, so only keys under this
    run's prefix are deleted.
    """
    _delete_rate_limit_keys()
    yield
    _delete_rate_limit_keys()


def _delete_rate_limit_keys() -> None:
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=cache.make_key("ratelimit:*")))
    if keys:
        client.delete(*keys)


@pytest.fixture
def staff(make_librarian):
    """Put a librarian of `library` at an available desk."""

    def put(library, socket_id: str = "s1"):
        librarian = make_librarian(library)
        presence.touch(
            library_id=library.id,
            librarian_id=librarian.pk,
            socket_id=socket_id,
            available=True,
        )
        return librarian

    return put


def status_url(slug: str) -> str:
    return f"/api/v1/libraries/{slug}/status"


def start_url(slug: str) -> str:
    return f"/api/v1/libraries/{slug}/conversations"


def post_json(client, slug: str, body, **extra):
    return client.post(
        start_url(slug), data=body, content_type="application/json", **extra
    )


def assert_error(response, status: int, code: str, errors: dict | None = None) -> dict:
    """The documented error shape: `code`, a human `detail`, and `errors` per field."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if errors is None:
        assert set(body) == {"code", "detail"}
    else:
        assert set(body) == {"code", "detail", "errors"}
        assert body["errors"] == errors
    return body


def local_today(library) -> date:
    return timezone.now().astimezone(ZoneInfo(library.timezone)).date()


def local_span(
    library, day: date, opens: clock_time, closes_day: date, closes: clock_time
):
    zone = ZoneInfo(library.timezone)
    return {
        "opens": datetime.combine(day, opens, tzinfo=zone).isoformat(),
        "closes": datetime.combine(closes_day, closes, tzinfo=zone).isoformat(),
    }


def vary(response) -> list[str]:
    return [value.strip() for value in response.get("Vary", "").split(",")]


def same_rate_window() -> None:
    """Start a rate-limit burst well inside one fixed one-minute window."""
    into_window = time.time() % 60
    if into_window > 55:
        time.sleep(60 - into_window + 0.1)


# Libraries
# ----------------------------------------------------------------------
def test_library_list_names_every_member_by_name(client, springfield, shelbyville):
    response = client.get("/api/v1/libraries/")

    assert response.status_code == 200
    assert response.json() == [
        {
            "slug": "shelbyville",
            "name": "Shelbyville Public Library",
            "timezone": "America/New_York",
            "website": "https://www.shelbyvillelibrary.example",
        },
        {
            "slug": "springfield",
            "name": "Springfield Public Library",
            "timezone": "America/Chicago",
            "website": "https://www.springfieldlibrary.example",
        },
    ]


def test_status_of_unstaffed_consortium_is_unavailable_with_no_wait(
    client, springfield
):
    today = local_today(springfield)

    response = client.get(status_url("springfield"))

    assert response.status_code == 200
    body = response.json()
    assert body.pop("answer_by")  # the promise, tested on its own below
    assert body == {
        "slug": "springfield",
        "chat_available": False,
        "staffed_locally": False,
        "estimated_wait_seconds": None,
        "hours_today": [
            local_span(
                springfield,
                today,
                clock_time(0),
                today + timedelta(days=1),
                clock_time(0),
            )
        ],
    }


def test_status_with_a_staffed_desk_is_available_locally(
    client, settings, springfield, staff
):
    settings.REFDESK_LOCAL_WAIT = timedelta(seconds=45)
    staff(springfield)

    body = client.get(status_url("springfield")).json()

    assert body["chat_available"] is True
    assert body["staffed_locally"] is True
    assert body["estimated_wait_seconds"] == 45


def test_status_with_only_another_member_staffed_is_available_not_locally(
    client, settings, springfield, shelbyville, staff
):
    settings.REFDESK_OVERFLOW_WAIT = timedelta(seconds=120)
    staff(shelbyville)

    body = client.get(status_url("springfield")).json()

    assert body["chat_available"] is True
    assert body["staffed_locally"] is False
    assert body["estimated_wait_seconds"] == 120


def test_status_lists_special_hours_of_today_in_the_library_zone(
    client, springfield, weekday_hours
):
    weekday_hours(springfield)
    today = local_today(springfield)
    SpecialHours.objects.create(
        library=springfield, day=today, opens=clock_time(18), closes=clock_time(20)
    )
    SpecialHours.objects.create(
        library=springfield, day=today, opens=clock_time(10), closes=clock_time(14)
    )

    body = client.get(status_url("springfield")).json()

    assert body["hours_today"] == [
        local_span(springfield, today, clock_time(10), today, clock_time(14)),
        local_span(springfield, today, clock_time(18), today, clock_time(20)),
    ]


def test_status_of_a_library_closed_today_has_no_hours_and_no_chat(
    client, springfield, weekday_hours, staff
):
    weekday_hours(springfield)
    today = local_today(springfield)
    Closure.objects.create(
        library=springfield, first=today - timedelta(days=1), last=today
    )
    staff(springfield)

    body = client.get(status_url("springfield")).json()

    assert body["hours_today"] == []
    assert body["chat_available"] is False
    assert body["staffed_locally"] is False
    assert body["estimated_wait_seconds"] is None


def test_status_of_unknown_library_is_not_found(client, springfield):
    assert_error(client.get(status_url("capital-city")), 404, "not_found")


# Starting a conversation
# ----------------------------------------------------------------------
def test_started_conversation_waits_for_a_staffed_desk(client, springfield, staff):
    staff(springfield)

    response = post_json(
        client, "springfield", {"question": "  Do you have Moby-Dick?  "}
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "token", "status", "websocket"}
    conversation_id = uuid.UUID(body["id"])
    assert body["status"] == "waiting"
    assert body["token"]
    assert body["websocket"] == f"/ws/chat/{body['id']}/?token={body['token']}"
    conversation = Conversation.objects.get(pk=conversation_id)
    assert conversation.status == ConversationStatus.WAITING
    assert conversation.queue == "local"
    assert list(conversation.messages.values_list("seq", "sender", "body")) == [
        (1, "patron", "Do you have Moby-Dick?")
    ]


def test_conversation_is_created_offline_when_nobody_is_staffed(client, springfield):
    response = post_json(client, "springfield", {"question": "Are you open on Sunday?"})

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "offline"
    conversation = Conversation.objects.get(pk=body["id"])
    assert conversation.status == ConversationStatus.OFFLINE
    assert conversation.escalate_at is None
    assert list(conversation.messages.values_list("seq", "body")) == [
        (1, "Are you open on Sunday?")
    ]


def test_patron_address_is_stored_nowhere(client, springfield, staff):
    staff(springfield)

    response = post_json(
        client,
        "springfield",
        {"question": "Where is my hold?", "name": "Pat", "email": "pat@example.org"},
        REMOTE_ADDR=PATRON_ADDRESS,
        headers={"X-Forwarded-For": "198.51.100.9"},
    )

    conversation = Conversation.objects.get(pk=response.json()["id"])
    rows = [
        conversation,
        *Message.objects.filter(conversation=conversation),
        *ConversationStep.objects.filter(conversation=conversation),
    ]
    stored = [
        str(field.value_from_object(row))
        for row in rows
        for field in row._meta.concrete_fields
    ]
    assert not [
        value for value in stored if "203.0.113" in value or "198.51.100" in value
    ]


def test_unknown_home_library_and_postal_code_are_kept_as_out_of_area(
    client, springfield
):
    response = post_json(
        client,
        "springfield",
        {
            "question": "Can I get a card?",
            "home_library": "Capital City",
            "postal_code": "99999",
        },
    )

    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.home_library is None
    assert conversation.declared_home_library == "Capital City"
    assert conversation.postal_code == "99999"
    assert conversation.is_in_area is False


def test_postal_code_in_a_service_area_counts_in_area(client, springfield):
    ServiceArea.objects.create(
        library=springfield, kind=ServiceAreaKind.POSTAL_CODE, value="SW1A1AA"
    )

    response = post_json(
        client,
        "springfield",
        {"question": "Can I get a card?", "postal_code": "sw1a 1aa"},
    )

    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.is_in_area is True
    assert conversation.home_library is None


def test_member_home_library_named_by_the_patron_counts_in_area(
    client, springfield, shelbyville
):
    response = post_json(
        client,
        "springfield",
        {"question": "Can I renew?", "home_library": "shelbyville public library"},
    )

    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert conversation.home_library == shelbyville
    assert conversation.is_in_area is True


def test_question_of_2000_code_points_after_trimming_is_accepted(client, springfield):
    question = "é" * 2000

    response = post_json(client, "springfield", {"question": f"  {question}\n"})

    assert response.status_code == 201
    assert Message.objects.get(conversation_id=response.json()["id"]).body == question


def test_start_conversation_query_count(
    client, springfield, shelbyville, staff, django_assert_max_num_queries
):
    staff(springfield)
    staff(shelbyville, socket_id="s2")
    body = {"question": "Do you have Moby-Dick?", "home_library": "shelbyville"}
    # The first request of a process loads the libraries (libraries/directory.py).
    assert post_json(client, "springfield", body).status_code == 201

    # Then: the open chats (staffing), the conversation, its question and its
    # first step, inside the test's savepoint (SAVEPOINT, RELEASE).
    with django_assert_max_num_queries(6) as queries:
        response = post_json(
            client, "springfield", body, headers={"Origin": SPRINGFIELD_SITE}
        )

    assert response.status_code == 201, [q["sql"][:60] for q in queries]


# Errors
# ----------------------------------------------------------------------
def test_missing_question_is_a_validation_error(client, springfield):
    body = assert_error(
        post_json(client, "springfield", {"name": "Pat"}),
        400,
        "validation_error",
        errors={"question": ["this field is required"]},
    )
    assert body["detail"] == "question: this field is required"


def test_question_over_2000_characters_is_a_validation_error(client, springfield):
    assert_error(
        post_json(client, "springfield", {"question": "x" * 2001}),
        400,
        "validation_error",
        errors={"question": ["at most 2000 characters"]},
    )


def test_all_blank_question_is_a_validation_error(client, springfield):
    assert_error(
        post_json(client, "springfield", {"question": " \t\n\u3000 "}),
        400,
        "validation_error",
        errors={"question": ["this field is required"]},
    )


@pytest.mark.parametrize(
    "question",
    [
        pytest.param(123, id="number"),
        pytest.param(["Moby-Dick"], id="list"),
        pytest.param({"text": "Moby-Dick"}, id="object"),
        pytest.param(True, id="boolean"),
    ],
)
def test_non_string_question_is_a_validation_error(client, springfield, question):
    assert_error(
        post_json(client, "springfield", {"question": question}),
        400,
        "validation_error",
        errors={"question": ["must be a string"]},
    )


def test_bad_email_is_a_validation_error(client, springfield):
    assert_error(
        post_json(client, "springfield", {"question": "Hi", "email": "pat@"}),
        400,
        "validation_error",
        errors={"email": ["enter a valid email address"]},
    )


def test_every_invalid_field_is_reported(client, springfield):
    assert_error(
        post_json(client, "springfield", {"email": "nope", "name": 7}),
        400,
        "validation_error",
        errors={
            "question": ["this field is required"],
            "email": ["enter a valid email address"],
            "name": ["must be a string"],
        },
    )


def test_nul_character_is_a_validation_error_not_a_server_error(client, springfield):
    response = post_json(client, "springfield", {"question": "Moby\u0000Dick"})

    body = assert_error(
        response, 400, "validation_error", errors=response.json()["errors"]
    )
    assert set(body["errors"]) == {"question"}
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"question": "Hi"', id="truncated"),
        pytest.param(" ", id="blank"),
        pytest.param("question=Hi", id="form-encoded"),
        pytest.param(b'{"question": "\xff"}', id="not-utf8"),
        pytest.param("[" * 60000, id="deeply-nested"),
    ],
)
def test_malformed_json_is_refused(client, springfield, raw):
    assert_error(post_json(client, "springfield", raw), 400, "malformed_json")
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(["Do you have Moby-Dick?"], id="array"),
        pytest.param('"Do you have Moby-Dick?"', id="string"),
        pytest.param("null", id="null"),
    ],
)
def test_json_that_is_not_an_object_is_malformed(client, springfield, body):
    assert_error(post_json(client, "springfield", body), 400, "malformed_json")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_body_that_is_not_json_content_is_unsupported(
    client, springfield, content_type
):
    response = client.post(
        start_url("springfield"),
        data=json.dumps({"question": "Hi"}),
        content_type=content_type,
    )

    assert_error(response, 415, "unsupported_media_type")


def test_body_over_64_kib_is_too_large(client, springfield):
    response = post_json(client, "springfield", {"question": "x" * (64 * 1024)})

    assert_error(response, 413, "too_large")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_chunked_body_over_64_kib_without_length_is_too_large(springfield):
    body = json.dumps({"question": "x" * (64 * 1024)}).encode()
    communicator = HttpCommunicator(
        application,
        "POST",
        start_url("springfield"),
        body=body,
        headers=[(b"host", b"localhost"), (b"content-type", b"application/json")],
    )

    response = await communicator.get_response(timeout=10)

    assert response["status"] == 413
    assert json.loads(response["body"])["code"] == "too_large"


def test_body_of_exactly_64_kib_is_read(client, springfield):
    prefix, suffix = '{"question": "', '"}'
    raw = prefix + "x" * (64 * 1024 - len(prefix) - len(suffix)) + suffix
    assert len(raw.encode()) == 64 * 1024

    assert_error(
        post_json(client, "springfield", raw),
        400,
        "validation_error",
        errors={"question": ["at most 2000 characters"]},
    )


def test_get_on_start_endpoint_is_method_not_allowed(client, springfield):
    response = client.get(start_url("springfield"))

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_post_on_status_endpoint_is_method_not_allowed(client, springfield):
    response = client.post(
        status_url("springfield"), data={}, content_type="application/json"
    )

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


def test_starting_at_unknown_library_is_not_found(client, springfield):
    assert_error(
        post_json(client, "capital-city", {"question": "Hi"}), 404, "not_found"
    )
    assert not Conversation.objects.exists()


# Rate limits
# ----------------------------------------------------------------------
def test_fourth_attempt_in_a_minute_is_rate_limited_even_when_invalid(
    client, settings, springfield
):
    settings.REFDESK_CHAT_RATE_PER_MINUTE = 3
    same_rate_window()

    first_three = [post_json(client, "springfield", {}).status_code for _ in range(3)]
    fourth = post_json(client, "springfield", {"question": "Hi"})
    fifth_invalid = post_json(client, "springfield", "not json")

    assert first_three == [400, 400, 400]
    for response in (fourth, fifth_invalid):
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response["Retry-After"]) <= 60
        assert response["Retry-After"] == str(int(response["Retry-After"]))
    assert not Conversation.objects.exists()


def test_attempts_at_unknown_libraries_count_towards_the_limit(
    client, settings, springfield
):
    settings.REFDESK_CHAT_RATE_PER_MINUTE = 3
    same_rate_window()

    statuses = [post_json(client, "capital-city", {}).status_code for _ in range(3)]

    assert statuses == [404, 404, 404]
    assert_error(
        post_json(client, "springfield", {"question": "Hi"}), 429, "rate_limited"
    )


def test_another_client_address_is_limited_separately(client, settings, springfield):
    settings.REFDESK_CHAT_RATE_PER_MINUTE = 3
    same_rate_window()
    for _ in range(4):
        post_json(client, "springfield", {"question": "Hi"}, REMOTE_ADDR="192.0.2.10")

    response = post_json(
        client, "springfield", {"question": "Hi"}, REMOTE_ADDR="192.0.2.11"
    )

    assert response.status_code == 201


def test_forwarded_for_is_ignored_from_an_untrusted_address(
    client, settings, springfield
):
    settings.REFDESK_CHAT_RATE_PER_MINUTE = 3
    settings.REFDESK_TRUSTED_PROXIES = ["10.0.0.0/8"]
    same_rate_window()

    statuses = [
        post_json(
            client,
            "springfield",
            {"question": "Hi"},
            REMOTE_ADDR="192.0.2.10",
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        ).status_code
        for n in range(4)
    ]

    assert statuses == [201, 201, 201, 429]


def test_forwarded_address_from_a_trusted_proxy_is_limited_on_its_own(
    client, settings, springfield
):
    settings.REFDESK_CHAT_RATE_PER_MINUTE = 3
    settings.REFDESK_TRUSTED_PROXIES = ["10.0.0.0/8"]
    same_rate_window()

    def via_proxy(forwarded_for: str) -> int:
        return post_json(
            client,
            "springfield",
            {"question": "Hi"},
            REMOTE_ADDR="10.1.2.3",
            headers={"X-Forwarded-For": forwarded_for},
        ).status_code

    first = [via_proxy("198.51.100.7") for _ in range(3)]
    spoofed = via_proxy("192.0.2.99, 198.51.100.7")
    other_patron = via_proxy("198.51.100.8")

    assert first == [201, 201, 201]
    assert spoofed == 429
    assert other_patron == 201


# CORS
# ----------------------------------------------------------------------
def test_library_website_origin_is_echoed(client, springfield):
    response = client.get(
        status_url("springfield"), headers={"Origin": SPRINGFIELD_SITE}
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SPRINGFIELD_SITE
    assert "Origin" in vary(response)


def test_unregistered_origin_gets_no_cors_header(client, springfield):
    response = client.get(
        status_url("springfield"), headers={"Origin": "https://evil.example"}
    )

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "Origin" in vary(response)


def test_another_members_origin_is_not_allowed_for_this_library(
    client, springfield, shelbyville
):
    response = client.get(
        status_url("springfield"),
        headers={"Origin": "https://www.shelbyvillelibrary.example"},
    )

    assert "Access-Control-Allow-Origin" not in response


def test_registered_widget_origin_may_start_a_chat(client, springfield):
    WidgetOrigin.objects.create(
        library=springfield, origin="https://catalog.springfield.example"
    )

    response = post_json(
        client,
        "springfield",
        {"question": "Hi"},
        headers={"Origin": "https://catalog.springfield.example"},
    )

    assert response.status_code == 201
    assert (
        response["Access-Control-Allow-Origin"] == "https://catalog.springfield.example"
    )
    assert "Origin" in vary(response)


def test_errors_carry_cors_headers_so_widgets_can_read_them(client, springfield):
    response = post_json(
        client, "springfield", {}, headers={"Origin": SPRINGFIELD_SITE}
    )

    assert_error(
        response,
        400,
        "validation_error",
        errors={"question": ["this field is required"]},
    )
    assert response["Access-Control-Allow-Origin"] == SPRINGFIELD_SITE


def test_library_list_allows_any_members_origin(client, springfield, shelbyville):
    response = client.get(
        "/api/v1/libraries/",
        headers={"Origin": "https://www.shelbyvillelibrary.example"},
    )

    assert (
        response["Access-Control-Allow-Origin"]
        == "https://www.shelbyvillelibrary.example"
    )


def test_preflight_from_allowed_origin_lists_methods_and_headers(client, springfield):
    response = client.options(
        start_url("springfield"),
        headers={
            "Origin": SPRINGFIELD_SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SPRINGFIELD_SITE
    assert response["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert response["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    assert "Origin" in vary(response)


def test_preflight_from_unknown_origin_is_not_allowed(client, springfield):
    response = client.options(
        start_url("springfield"),
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
        },
    )

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Methods" not in response
    assert not Conversation.objects.exists()


@pytest.mark.django_db
def test_status_promises_an_answer_time_when_nobody_can_chat(client, springfield):
    body = client.get("/api/v1/libraries/springfield/status").json()
    assert body["chat_available"] is False
    promised = datetime.fromisoformat(body["answer_by"])
    hours = (promised - timezone.now()).total_seconds() / 3600
    assert 23.9 < hours <= 24  # always open: the 24-hour SLA in calendar time
