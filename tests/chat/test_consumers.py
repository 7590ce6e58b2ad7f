"""Both sockets end to end through refdesk.asgi.application, on the Redis channel
layer and PostgreSQL, asserting PROTOCOL.md's exact shapes."""

import asyncio
import contextlib
import json
import uuid

import psycopg
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import Client

from chat import events, protocol, selectors, services
from chat.models import Conversation, ConversationStatus, Message
from tests.chat.conftest import (
    desk_socket,
    make_user,
    open_desk,
    patron_socket,
    receive,
    receive_until,
    session_cookie,
)
from tests.conftest import test_database_url as database_url

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = sync_to_async


@pytest.fixture
def springfield_desk(springfield, make_librarian):
    librarian = make_librarian(springfield, display_name="Marge")
    return librarian, session_cookie(librarian.user)


async def _patron(conversation, token, **kw):
    patron = patron_socket(conversation.id, token, **kw)
    connected, _ = await patron.connect()
    assert connected
    return patron


async def _start_and_accept(desk, start_chat, question="Do you have Moby-Dick?"):
    conversation, token = await db(start_chat)(question=question)
    offer = await receive_until(desk, "offer")
    assert offer["conversation"]["id"] == str(conversation.id)
    await desk.send_json_to({"type": "accept", "conversation": str(conversation.id)})
    accepted = await receive_until(desk, "accepted")
    return conversation, token, accepted


# Patron socket
# ----------------------------------------------------------------------
async def test_patron_gets_status_then_history_on_connect(springfield_desk, start_chat):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token = await db(start_chat)(name="Pat")
    patron = await _patron(conversation, token)

    assert await receive(patron) == {
        "type": "status",
        "status": "waiting",
        "queue": "local",
        "library": {"slug": "springfield", "name": "Springfield Public Library"},
        "estimated_wait_seconds": 45,
    }
    first = await receive(patron)
    assert first["type"] == "message"
    assert (first["seq"], first["sender"], first["name"], first["body"]) == (
        1,
        "patron",
        "Pat",
        "Do you have Moby-Dick?",
    )
    assert await patron.receive_nothing(0.2)
    await patron.disconnect()
    await desk.disconnect()


@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param("", 4401, id="missing-token"),
        pytest.param("forged-token", 4403, id="wrong-token"),
    ],
)
async def test_patron_socket_refuses_bad_tokens(springfield, start_chat, token, code):
    conversation, _ = await db(start_chat)()
    patron = patron_socket(conversation.id, token)
    connected, _ = await patron.connect()
    assert connected  # the handshake completes so that the client sees the code
    assert await patron.receive_output(2) == {"type": "websocket.close", "code": code}


async def test_another_conversations_token_is_forbidden(springfield, start_chat):
    first, token = await db(start_chat)()
    second, _ = await db(start_chat)()
    patron = patron_socket(second.id, token)
    await patron.connect()
    assert await patron.receive_output(2) == {"type": "websocket.close", "code": 4403}


async def test_unknown_conversation_is_refused(springfield):
    unknown = uuid.uuid4()
    patron = patron_socket(unknown, services.patron_token(unknown))
    await patron.connect()
    assert await patron.receive_output(2) == {"type": "websocket.close", "code": 4401}


async def test_patron_message_is_stored_then_echoed_with_seq(
    springfield, staffed, start_chat
):
    await db(staffed)(springfield)
    conversation, token = await db(start_chat)()
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")  # seq 1, the question

    await patron.send_json_to(
        {"type": "message", "body": "  And Typee?  ", "client_id": "c-1"}
    )
    echo = await receive(patron)

    assert echo["type"] == "message"
    assert (echo["seq"], echo["body"], echo["client_id"]) == (2, "And Typee?", "c-1")
    stored = await db(Message.objects.get)(conversation=conversation, seq=2)
    assert stored.body == "And Typee?"
    await patron.disconnect()


async def test_retried_client_id_is_stored_once_and_answered_only_to_sender(
    springfield, staffed, start_chat
):
    await db(staffed)(springfield)
    conversation, token = await db(start_chat)()
    sender = await _patron(conversation, token)
    other = await _patron(conversation, token)
    for socket in (sender, other):
        await receive_until(socket, "message")

    frame = {"type": "message", "body": "hello", "client_id": "retry-me"}
    await sender.send_json_to(frame)
    first = await receive(sender)
    assert (await receive(other))["seq"] == first["seq"]
    await sender.send_json_to(frame)
    again = await receive(sender)

    assert again == first
    assert await other.receive_nothing(0.3)
    assert await db(Message.objects.filter(conversation=conversation).count)() == 2
    await sender.disconnect()
    await other.disconnect()


@pytest.mark.parametrize(
    ("raw", "code", "context"),
    [
        pytest.param("not json", "bad_json", {}, id="bad-json"),
        pytest.param("[1, 2]", "bad_frame", {}, id="not-an-object"),
        pytest.param('{"body": "x"}', "bad_frame", {}, id="no-type"),
        pytest.param('{"type": "dance"}', "unknown_type", {}, id="unknown-type"),
        pytest.param(
            '{"type": "message", "body": "   ", "client_id": "c-9"}',
            "validation_error",
            {"client_id": "c-9"},
            id="blank-body",
        ),
        pytest.param(
            json.dumps({"type": "message", "body": "x" * 4001, "client_id": "c-8"}),
            "validation_error",
            {"client_id": "c-8"},
            id="body-over-4000",
        ),
        pytest.param(
            json.dumps({"type": "message", "body": "a\u0000b", "client_id": "c-7"}),
            "validation_error",
            {"client_id": "c-7"},
            id="nul-in-body",
        ),
        pytest.param(
            '{"type": "message", "body": 42}', "bad_frame", {}, id="body-not-text"
        ),
        pytest.param(
            json.dumps({"type": "message", "body": "x", "client_id": "c" * 101}),
            "validation_error",
            {},
            id="client-id-too-long",
        ),
        pytest.param(
            '{"type": "resume", "after_seq": -1}', "bad_frame", {}, id="bad-resume"
        ),
        pytest.param(
            json.dumps({"type": "message", "body": "é" * 9000}),
            "too_large",
            {},
            id="over-16k",
        ),
    ],
)
async def test_bad_patron_frames_get_errors_and_the_socket_stays_open(
    springfield, staffed, start_chat, raw, code, context
):
    await db(staffed)(springfield)
    conversation, token = await db(start_chat)()
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")

    await patron.send_to(text_data=raw)
    error = await receive(patron)

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["detail"]
    for key, value in context.items():
        assert error[key] == value
    await patron.send_json_to({"type": "message", "body": "still here"})
    assert (await receive(patron))["seq"] == 2
    await patron.disconnect()


async def test_body_of_exactly_4000_characters_is_accepted(
    springfield, staffed, start_chat
):
    await db(staffed)(springfield)
    conversation, token = await db(start_chat)()
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    # 8,000 bytes as clients send it (non-ASCII unescaped), under the 16 KiB limit
    frame = json.dumps({"type": "message", "body": "ü" * 4000}, ensure_ascii=False)
    await patron.send_to(text_data=frame)
    assert (await receive(patron))["seq"] == 2
    await patron.disconnect()


async def test_frame_over_one_mebibyte_closes_with_1009(
    springfield, staffed, start_chat
):
    await db(staffed)(springfield)
    conversation, token = await db(start_chat)()
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    await patron.send_to(text_data="x" * (1024 * 1024 + 1))
    assert await patron.receive_output(2) == {"type": "websocket.close", "code": 1009}


async def test_resume_sends_status_messages_after_seq_then_resumed(
    springfield, staffed, start_chat
):
    await db(staffed)(springfield)
    conversation, token = await db(start_chat)()
    for n in range(3):
        await db(services.post_message)(
            conversation_id=conversation.id, sender="patron", body=f"m{n}"
        )
    patron = await _patron(conversation, token, after_seq=3)
    assert (await receive(patron))["type"] == "status"
    assert (await receive(patron))["seq"] == 4
    assert await patron.receive_nothing(0.2)

    await patron.send_json_to({"type": "resume", "after_seq": 2})
    frames = [await receive(patron) for _ in range(4)]

    assert [f["type"] for f in frames] == ["status", "message", "message", "resumed"]
    assert [f.get("seq") for f in frames[1:3]] == [3, 4]
    assert frames[3] == {"type": "resumed", "last_seq": 4}
    await patron.disconnect()


async def test_patron_close_while_waiting_abandons_and_withdraws(
    springfield_desk, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token = await db(start_chat)()
    await receive_until(desk, "offer")
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")

    await patron.send_json_to({"type": "close"})

    assert (await receive(patron))["status"] == "abandoned"
    assert await receive(desk) == {
        "type": "withdraw",
        "conversation": str(conversation.id),
        "reason": "abandoned",
    }
    await patron.send_json_to({"type": "message", "body": "anyone?"})
    assert (await receive(patron))["code"] == "conversation_closed"
    await patron.disconnect()
    await desk.disconnect()


async def test_message_while_waiting_reaches_librarian_in_accepted_history(
    springfield_desk, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token = await db(start_chat)()
    await receive_until(desk, "offer")
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    await patron.send_json_to(
        {"type": "message", "body": "I'm still here", "client_id": "w1"}
    )
    await receive(patron)
    assert await desk.receive_nothing(0.2)  # nobody else gets a waiting chat's messages

    await desk.send_json_to({"type": "accept", "conversation": str(conversation.id)})
    accepted = await receive_until(desk, "accepted")

    assert [m["seq"] for m in accepted["history"]] == [1, 2]
    assert accepted["history"][1]["conversation"] == str(conversation.id)
    await patron.disconnect()
    await desk.disconnect()


# Desk socket
# ----------------------------------------------------------------------
async def test_desk_without_session_closes_4401(springfield):
    desk = desk_socket(None)
    connected, _ = await desk.connect()
    assert connected
    assert await desk.receive_output(2) == {"type": "websocket.close", "code": 4401}


async def test_desk_for_a_user_who_is_not_a_librarian_closes_4403(springfield):
    cookie = await db(lambda: session_cookie(make_user()))()
    desk = desk_socket(cookie)
    await desk.connect()
    assert await desk.receive_output(2) == {"type": "websocket.close", "code": 4403}


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(b"https://evil.example", id="foreign-origin"),
        pytest.param(None, id="none"),
    ],
)
async def test_desk_refuses_other_origins_at_the_handshake(springfield_desk, origin):
    desk = desk_socket(springfield_desk[1], origin=origin)
    connected, _ = await desk.connect()
    # Refused before accept: ASGI servers answer such a handshake with HTTP 403
    # (proven against uvicorn in tests/chat/test_live_server.py).
    assert not connected


async def test_desk_opens_with_presence_then_queue(springfield_desk, start_chat):
    conversation, _ = await db(start_chat)()  # waits with nobody there: goes offline
    desk, presence_frame, queue = await open_desk(springfield_desk[1])
    assert presence_frame == {
        "type": "presence",
        "status": "available",
        "heartbeat_seconds": 10,
    }
    assert queue == {"type": "queue", "conversations": []}
    assert conversation.status == "offline"

    waiting, _ = await db(start_chat)(
        question="Hours on Sunday?", home_library="Ogdenville"
    )
    offer = await receive(desk)
    assert offer["type"] == "offer"
    item = offer["conversation"]
    assert set(item) >= {
        "id",
        "origin_library",
        "home_library",
        "in_area",
        "queue",
        "question",
        "waiting_since",
        "escalate_at",
        "transfer_note",
    }
    assert (item["id"], item["origin_library"], item["queue"], item["question"]) == (
        str(waiting.id),
        "springfield",
        "local",
        "Hours on Sunday?",
    )
    assert item["in_area"] is False
    again, _, queue = await open_desk(springfield_desk[1])  # a second tab
    assert [c["id"] for c in queue["conversations"]] == [str(waiting.id)]
    await again.disconnect()
    await desk.disconnect()


async def test_offer_goes_only_to_the_origin_library_while_local(
    springfield_desk, shelbyville, make_librarian, start_chat
):
    springfield_desk_socket, _, _ = await open_desk(springfield_desk[1])
    other = await db(make_librarian)(shelbyville)
    shelbyville_desk, _, _ = await open_desk(await db(session_cookie)(other.user))

    await db(start_chat)()

    assert (await receive(springfield_desk_socket))["type"] == "offer"
    assert await shelbyville_desk.receive_nothing(0.3)
    await springfield_desk_socket.disconnect()
    await shelbyville_desk.disconnect()


async def test_accept_gives_history_patron_and_local_info_and_withdraws_elsewhere(
    springfield, make_librarian, start_chat
):
    winner = await db(make_librarian)(springfield, display_name="Marge")
    loser = await db(make_librarian)(springfield, display_name="Ned")
    win_cookie = await db(session_cookie)(winner.user)
    desk_a, _, _ = await open_desk(win_cookie)
    desk_a2, _, _ = await open_desk(win_cookie)  # the winner's second tab
    desk_b, _, _ = await open_desk(await db(session_cookie)(loser.user))
    await db(springfield.local_info.create)(
        kind="cards",
        title="Cards",
        body="Free for **state residents**.<script>x()</script>",
    )
    conversation, token = await db(start_chat)(name="Pat", postal_code="62704")
    for desk in (desk_a, desk_a2, desk_b):
        await receive_until(desk, "offer")
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")

    await desk_a.send_json_to({"type": "accept", "conversation": str(conversation.id)})

    withdraw = {
        "type": "withdraw",
        "conversation": str(conversation.id),
        "reason": "accepted",
    }
    frames_a = [await receive(desk_a), await receive(desk_a)]
    assert withdraw in frames_a
    accepted = next(f for f in frames_a if f["type"] == "accepted")
    assert accepted["conversation"] == str(conversation.id)
    assert accepted["patron"]["name"] == "Pat"
    assert accepted["patron"]["postal_code"] == "62704"
    assert accepted["local_info"]["library"] == {
        "slug": "springfield",
        "name": "Springfield Public Library",
    }
    section = accepted["local_info"]["sections"][0]
    assert section["title"] == "Cards"
    assert "<strong>state residents</strong>" in section["body_html"]
    assert "<script>" not in section["body_html"]
    assert "home_local_info" not in accepted
    assert [m["seq"] for m in accepted["history"]] == [1]
    frames_a2 = [await receive(desk_a2), await receive(desk_a2)]
    assert {f["type"] for f in frames_a2} == {"withdraw", "accepted"}
    assert await receive(desk_b) == withdraw
    assert await desk_b.receive_nothing(0.2)
    status = await receive(patron)
    assert (status["status"], status["queue"], status["estimated_wait_seconds"]) == (
        "active",
        None,
        None,
    )

    await desk_b.send_json_to({"type": "accept", "conversation": str(conversation.id)})
    assert await receive(desk_b) == {
        "type": "error",
        "code": "already_taken",
        "conversation": str(conversation.id),
        "detail": "another librarian has already taken this chat",
    }
    for socket in (patron, desk_a, desk_a2, desk_b):
        await socket.disconnect()


async def test_home_local_info_is_sent_when_the_home_library_is_another_member(
    springfield_desk, shelbyville, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    await db(shelbyville.local_info.create)(
        kind="cards", title="Shelbyville cards", body="$40"
    )
    _, _, accepted = await _start_and_accept(
        desk, lambda question: start_chat(question=question, home_library="shelbyville")
    )
    assert accepted["home_local_info"]["library"]["slug"] == "shelbyville"
    assert accepted["home_local_info"]["sections"][0]["title"] == "Shelbyville cards"
    assert accepted["patron"]["home_library"] == "shelbyville"
    await desk.disconnect()


async def test_accepting_another_librarys_local_chat_is_not_yours(
    springfield, shelbyville, make_librarian, start_chat
):
    here = await db(make_librarian)(springfield)
    desk_here, _, _ = await open_desk(await db(session_cookie)(here.user))
    there = await db(make_librarian)(shelbyville)
    desk_there, _, _ = await open_desk(await db(session_cookie)(there.user))
    conversation, _ = await db(start_chat)()
    await receive_until(desk_here, "offer")

    await desk_there.send_json_to(
        {"type": "accept", "conversation": str(conversation.id)}
    )

    error = await receive(desk_there)
    assert (error["type"], error["code"], error["conversation"]) == (
        "error",
        "not_yours",
        str(conversation.id),
    )
    unknown = str(uuid.uuid4())
    await desk_there.send_json_to({"type": "accept", "conversation": unknown})
    assert (await receive(desk_there))["code"] == "not_found"
    await desk_here.disconnect()
    await desk_there.disconnect()


async def test_messages_and_typing_flow_between_patron_and_librarian(
    springfield_desk, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token, _ = await _start_and_accept(desk, start_chat)
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    cid = str(conversation.id)

    await desk.send_json_to({"type": "typing", "conversation": cid})
    assert await receive(patron) == {"type": "typing", "sender": "librarian"}
    assert await desk.receive_nothing(0.1)

    await desk.send_json_to(
        {
            "type": "message",
            "conversation": cid,
            "body": "Yes, 3 copies.",
            "client_id": "l-1",
        }
    )
    at_desk = await receive(desk)
    at_patron = await receive(patron)
    assert at_desk == {**at_patron, "conversation": cid}
    assert (at_patron["seq"], at_patron["sender"], at_patron["name"]) == (
        2,
        "librarian",
        "Marge",
    )

    await patron.send_json_to({"type": "typing"})
    assert await receive(desk) == {
        "type": "typing",
        "conversation": cid,
        "sender": "patron",
    }
    assert await patron.receive_nothing(0.1)

    await patron.send_json_to(
        {"type": "message", "body": "Thanks!", "client_id": "p-1"}
    )
    assert (await receive(patron))["seq"] == 3
    assert (await receive(desk))["seq"] == 3
    assert await desk.receive_nothing(0.3)  # each message once, however published
    assert await patron.receive_nothing(0.1)
    first_reply = await db(lambda: Conversation.objects.get(pk=cid).first_reply_at)()
    assert first_reply is not None
    await patron.disconnect()
    await desk.disconnect()


async def test_desk_resume_and_errors_name_the_conversation(
    springfield, make_librarian, springfield_desk, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, _, _ = await _start_and_accept(desk, start_chat)
    cid = str(conversation.id)
    await desk.send_json_to({"type": "message", "conversation": cid, "body": "one"})
    await receive(desk)

    await desk.send_json_to({"type": "resume", "conversation": cid, "after_seq": 0})
    frames = [await receive(desk) for _ in range(3)]
    assert [f.get("seq") for f in frames[:2]] == [1, 2]
    assert frames[2] == {"type": "resumed", "conversation": cid, "last_seq": 2}

    colleague = await db(make_librarian)(springfield)
    other_desk, _, _ = await open_desk(await db(session_cookie)(colleague.user))
    await other_desk.send_json_to(
        {"type": "message", "conversation": cid, "body": "hijack"}
    )
    error = await receive(other_desk)
    assert (error["code"], error["conversation"]) == ("not_yours", cid)
    await other_desk.send_json_to({"type": "accept", "conversation": "not-a-uuid"})
    assert (await receive(other_desk))["code"] == "bad_frame"
    await other_desk.send_json_to(
        {"type": "close", "conversation": cid, "outcome": "vanished"}
    )
    error = await receive(other_desk)
    assert (error["code"], error["conversation"]) == ("validation_error", cid)
    await desk.disconnect()
    await other_desk.disconnect()


async def test_librarian_close_with_outcome_tells_both_sides(
    springfield_desk, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token, _ = await _start_and_accept(desk, start_chat)
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    cid = str(conversation.id)

    await desk.send_json_to(
        {
            "type": "close",
            "conversation": cid,
            "outcome": "follow_up_self",
            "note": "will check the catalogue",
            "tags": ["Catalog", "catalog", "holds"],
        }
    )

    assert await receive(desk) == {
        "type": "closed",
        "conversation": cid,
        "by": "librarian",
    }
    assert (await receive(patron))["status"] == "closed"
    stored = await db(Conversation.objects.get)(pk=cid)
    assert (stored.status, stored.outcome, stored.tags) == (
        "closed",
        "follow_up_self",
        ["catalog", "holds"],
    )
    await desk.send_json_to({"type": "message", "conversation": cid, "body": "late"})
    assert (await receive(desk))["code"] == "conversation_closed"
    await patron.send_json_to({"type": "message", "body": "hello?"})
    assert (await receive(patron))["code"] == "conversation_closed"
    await patron.disconnect()
    await desk.disconnect()


async def test_patron_close_of_an_active_chat_tells_the_librarian(
    springfield_desk, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token, _ = await _start_and_accept(desk, start_chat)
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")

    await patron.send_json_to({"type": "close"})

    assert (await receive(patron))["status"] == "closed"
    assert await receive(desk) == {
        "type": "closed",
        "conversation": str(conversation.id),
        "by": "patron",
    }
    await patron.disconnect()
    await desk.disconnect()


async def test_reloaded_desk_recovers_its_chats(springfield_desk, start_chat):
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token, _ = await _start_and_accept(desk, start_chat)
    await desk.disconnect()

    reloaded, _, queue = await open_desk(springfield_desk[1])
    accepted = await receive(reloaded)

    assert queue["conversations"] == []
    assert accepted["type"] == "accepted"
    assert accepted["conversation"] == str(conversation.id)
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    await patron.send_json_to({"type": "message", "body": "Still there?"})
    message = await receive_until(reloaded, "message")
    assert (message["conversation"], message["seq"]) == (str(conversation.id), 2)
    assert await reloaded.receive_nothing(0.2)
    await patron.disconnect()
    await reloaded.disconnect()


async def test_transfer_offers_the_chat_to_the_target_with_a_note(
    springfield_desk, shelbyville, make_librarian, start_chat
):
    desk, _, _ = await open_desk(springfield_desk[1])
    colleague = await db(make_librarian)(shelbyville)
    target_desk, _, _ = await open_desk(await db(session_cookie)(colleague.user))
    conversation, token, _ = await _start_and_accept(desk, start_chat)
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")
    cid = str(conversation.id)

    await desk.send_json_to(
        {
            "type": "transfer",
            "conversation": cid,
            "to_library": "shelbyville",
            "note": "ILL q",
        }
    )

    assert await receive(desk) == {
        "type": "closed",
        "conversation": cid,
        "by": "librarian",
    }
    offer = await receive(target_desk)
    assert offer["type"] == "offer"
    assert (offer["conversation"]["id"], offer["conversation"]["transfer_note"]) == (
        cid,
        "ILL q",
    )
    assert offer["conversation"]["queue"] == "local"
    patron_frames = [await receive(patron), await receive(patron)]
    system = next(f for f in patron_frames if f["type"] == "message")
    status = next(f for f in patron_frames if f["type"] == "status")
    assert (system["sender"], system["seq"]) == ("system", 2)
    assert status["status"] == "waiting"
    await desk.send_json_to(
        {"type": "transfer", "conversation": cid, "to_library": "nowhere", "note": ""}
    )
    assert (await receive(desk))["code"] in {"not_yours", "not_found"}
    for socket in (desk, target_desk, patron):
        await socket.disconnect()


async def test_presence_away_and_heartbeat(springfield_desk):
    desk, _, _ = await open_desk(springfield_desk[1])
    await desk.send_json_to({"type": "heartbeat"})
    assert await desk.receive_nothing(0.2)
    await desk.send_json_to({"type": "presence", "status": "away"})
    assert await receive(desk) == {
        "type": "presence",
        "status": "away",
        "heartbeat_seconds": 10,
    }
    await desk.send_json_to({"type": "presence", "status": "available"})
    assert (await receive(desk))["status"] == "available"
    assert (await receive(desk))[
        "type"
    ] == "queue"  # chats appear at once when available
    await desk.send_json_to({"type": "presence", "status": "asleep"})
    assert (await receive(desk))["code"] == "bad_frame"
    await desk.disconnect()


async def test_logout_closes_only_that_sessions_desks(springfield_desk, springfield):
    librarian, _ = springfield_desk

    def two_sessions():
        first, second = Client(), Client()
        first.force_login(librarian.user)
        second.force_login(librarian.user)
        name = settings.SESSION_COOKIE_NAME
        return first, [
            f"{name}={c.cookies[name].value}".encode() for c in (first, second)
        ]

    first_client, (cookie_1, cookie_2) = await db(two_sessions)()
    desk_1, _, _ = await open_desk(cookie_1)
    desk_2, _, _ = await open_desk(cookie_2)

    response = await db(first_client.post)("/accounts/logout/")

    assert response.status_code == 302
    assert await desk_1.receive_output(2) == {"type": "websocket.close", "code": 4401}
    assert await desk_2.receive_nothing(0.3)
    await desk_2.disconnect()


async def test_desk_frames_of_another_status_keep_rows_intact(
    springfield_desk, start_chat
):
    """Hostile input changes nothing already stored."""
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, _, _ = await _start_and_accept(desk, start_chat)
    cid = str(conversation.id)
    for raw in [
        "{",
        json.dumps({"type": "message", "conversation": cid, "body": ""}),
        "null",
    ]:
        await desk.send_to(text_data=raw)
        assert (await receive(desk))["type"] == "error"
    stored = await db(Conversation.objects.get)(pk=cid)
    assert stored.status == ConversationStatus.ACTIVE
    assert stored.last_seq == 1
    await desk.disconnect()


async def test_offline_status_promises_a_concrete_answer_time(springfield, start_chat):
    conversation, token = await db(start_chat)()  # nobody staffed anywhere
    patron = await _patron(conversation, token)
    status = await receive(patron)
    assert (status["status"], status["queue"], status["estimated_wait_seconds"]) == (
        "offline",
        None,
        None,
    )
    assert status["answer_by"] > conversation.created_at.isoformat()
    await patron.disconnect()


async def test_a_chat_stuck_on_the_database_holds_none_of_the_desks_other_chats(
    springfield_desk, start_chat
):
    """A desk carries many chats: while one waits on the database (here a real
    row lock held by another session), the desk's other chats go on both ways,
    and the stuck one finishes, in order, once the lock goes (chat.lanes)."""
    desk, _, _ = await open_desk(springfield_desk[1])
    stuck, _, _ = await _start_and_accept(desk, start_chat, question="First?")
    other, token, _ = await _start_and_accept(desk, start_chat, question="Second?")
    patron = await _patron(other, token)
    await receive_until(patron, "message")

    locker = await psycopg.AsyncConnection.connect(database_url())
    try:
        await locker.execute(
            "SELECT 1 FROM chat_conversation WHERE id = %s FOR UPDATE", [stuck.id]
        )
        for n in (1, 2):
            await desk.send_json_to(
                {
                    "type": "message",
                    "conversation": str(stuck.id),
                    "body": f"Held {n}",
                    "client_id": f"held-{n}",
                }
            )
        await desk.send_json_to(
            {
                "type": "message",
                "conversation": str(other.id),
                "body": "Not held",
                "client_id": "free-1",
            }
        )
        echo = await receive(desk)
        assert (echo["conversation"], echo["body"]) == (str(other.id), "Not held")
        assert (await receive(patron))["body"] == "Not held"
        await patron.send_json_to(
            {"type": "message", "body": "Thanks", "client_id": "p"}
        )
        assert (await receive(patron))["body"] == "Thanks"
        assert (await receive(desk))["body"] == "Thanks"
        assert await desk.receive_nothing(0.3)  # the stuck chat's are still waiting
    finally:
        await locker.rollback()
        await locker.close()

    released = [await receive(desk), await receive(desk)]
    assert [(m["conversation"], m["seq"], m["body"]) for m in released] == [
        (str(stuck.id), 2, "Held 1"),
        (str(stuck.id), 3, "Held 2"),
    ]
    await patron.disconnect()
    await desk.disconnect()


@contextlib.asynccontextmanager
async def _database_thread_held(desk, stuck):
    """Hold the socket process's database thread: the desk accepts `stuck`
    while a real row lock keeps that accept waiting. Yields once the accept
    waits on the lock; on the way out the lock goes and the accept must finish
    (even when the body failed: it has to end on this test's loop)."""
    locker = await psycopg.AsyncConnection.connect(database_url())
    try:
        await locker.execute(
            "SELECT 1 FROM chat_conversation WHERE id = %s FOR UPDATE", [stuck.id]
        )
        await desk.send_json_to({"type": "accept", "conversation": str(stuck.id)})
        for _ in range(100):
            cursor = await locker.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted"
            )
            if (await cursor.fetchone())[0]:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the accept never waited on the row lock")
        yield
    finally:
        await locker.rollback()
        await locker.close()
        accepted = await receive_until(desk, "accepted")
    assert accepted["conversation"] == str(stuck.id)


async def test_an_accepted_chats_catch_up_read_holds_none_of_the_desks_other_chats(
    springfield_desk, start_chat
):
    """On `accepted` a desk reads what was stored before it joined the chat's
    group. That read waits its turn on the process's database thread; here the
    thread is held by another accept stuck on a real row lock. Meanwhile the
    desk's other chats keep arriving (chat.lanes)."""
    librarian, cookie = springfield_desk
    desk, _, _ = await open_desk(cookie)
    flowing, token, _ = await _start_and_accept(desk, start_chat, question="One?")
    rejoined, _, _ = await _start_and_accept(desk, start_chat, question="Two?")
    stuck, _ = await db(start_chat)(question="Three?")
    await receive_until(desk, "offer")
    patron = await _patron(flowing, token)
    await receive_until(patron, "message")
    [frame] = await db(
        lambda: selectors.accepted_payloads([Conversation.objects.get(pk=rejoined.pk)])
    )()

    async with _database_thread_held(desk, stuck):
        # Another tab of the librarian accepted `rejoined` (as after a transfer
        # back): this desk tracks it again and must read its history.
        await get_channel_layer().group_send(
            events.librarian_desks_group(librarian.pk),
            {"type": "desk.accepted", "frame": frame},
        )
        assert (await receive(desk))["conversation"] == str(rejoined.id)
        await patron.send_json_to(
            {"type": "message", "body": "Hello?", "client_id": "p"}
        )
        arrived = await receive(desk)
        assert (arrived["conversation"], arrived["body"]) == (str(flowing.id), "Hello?")

    assert await desk.receive_nothing(0.3)
    await patron.disconnect()
    await desk.disconnect()


async def test_a_patrons_gap_fill_does_not_wait_for_the_database_thread(
    springfield_desk, start_chat
):
    """A patron socket that sees seq 3 before seq 2 reads the gap from the
    database after a short wait. Under load gaps come often, so that read must
    not queue on the process's database thread: here the thread is held by an
    accept stuck on a real row lock, and the gap still fills."""
    desk, _, _ = await open_desk(springfield_desk[1])
    flowing, token, _ = await _start_and_accept(desk, start_chat)
    patron = await _patron(flowing, token)
    assert (await receive_until(patron, "message"))["seq"] == 1
    stuck, _ = await db(start_chat)(question="Stuck?")
    await receive_until(desk, "offer")

    def store_unpublished() -> dict:
        # Stored, as if their publishes were still on the way.
        rows = [
            Message.objects.create(
                conversation=flowing,
                seq=seq,
                sender="patron",
                name="",
                body=f"Line {seq}",
                sent_at=flowing.created_at,
            )
            for seq in (2, 3)
        ]
        Conversation.objects.filter(pk=flowing.pk).update(last_seq=3)
        return protocol.message(rows[-1])

    third = await db(store_unpublished)()

    async with _database_thread_held(desk, stuck):
        await get_channel_layer().group_send(
            events.conversation_group(flowing.id),
            {
                "type": "conversation.message",
                "message": third,
                "conversation": str(flowing.id),
            },
        )
        filled = [await receive(patron, timeout=2), await receive(patron, timeout=2)]
        assert [(f["seq"], f["body"]) for f in filled] == [(2, "Line 2"), (3, "Line 3")]

    assert await patron.receive_nothing(0.3)
    await patron.disconnect()
    await desk.disconnect()


async def test_a_closing_desk_finishes_the_frames_it_took(springfield_desk, start_chat):
    """A message the desk sent just before its socket closed is still stored."""
    desk, _, _ = await open_desk(springfield_desk[1])
    conversation, token, _ = await _start_and_accept(desk, start_chat)
    patron = await _patron(conversation, token)
    await receive_until(patron, "message")  # the question
    await desk.send_json_to(
        {
            "type": "message",
            "conversation": str(conversation.id),
            "body": "Sent while closing",
            "client_id": "last-words",
        }
    )
    await desk.disconnect()
    last = await receive(patron)
    assert (last["seq"], last["body"]) == (2, "Sent while closing")
    await patron.disconnect()
