"""The protocol through the production server (uvicorn) rather than the test
communicator: handshake refusals, close codes, and logs free of tokens."""

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat import services
from libraries import presence

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("quiet_database_at_teardown"),
]


def ws_url(live_server, path: str) -> str:
    return live_server.url.replace("http://", "ws://") + path


def test_desk_handshake_from_a_foreign_origin_is_http_403(live_server, springfield):
    async def attempt(origin):
        headers = {"Origin": origin} if origin else {}
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(
                ws_url(live_server, "/ws/desk/"), additional_headers=headers
            ):
                pass
        return refused.value.response.status_code

    assert asyncio.run(attempt("https://evil.example")) == 403


def test_patron_chat_through_uvicorn_keeps_tokens_out_of_the_log(
    live_server, springfield, make_librarian
):
    librarian = make_librarian(springfield)
    presence.touch(
        library_id=springfield.id,
        librarian_id=librarian.id,
        socket_id="live-desk",
        available=True,
    )
    conversation, token = services.start_conversation(
        library_slug="springfield", question="Where is the atlas?"
    )

    async def chat():
        async with websockets.connect(
            ws_url(live_server, f"/ws/chat/{conversation.id}/?token={token}"),
            max_size=4 * 1024 * 1024,
        ) as socket:
            status = json.loads(await socket.recv())
            first = json.loads(await socket.recv())
            await socket.send(
                json.dumps({"type": "message", "body": "hi", "client_id": "a"})
            )
            echo = json.loads(await socket.recv())
            await socket.send("x" * (1024 * 1024 + 10))
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            return status, first, echo, closed.value.rcvd.code

    status, first, echo, close_code = asyncio.run(chat())

    assert status["type"] == "status"
    assert first["seq"] == 1
    assert echo["seq"] == 2
    assert close_code == 1009
    assert token not in live_server.log()
    assert "127.0.0.1" not in live_server.log()


def test_wrong_token_closes_4403_through_uvicorn(live_server, springfield):
    conversation, _ = services.start_conversation(
        library_slug="springfield", question="Q?"
    )

    async def attempt():
        async with websockets.connect(
            ws_url(live_server, f"/ws/chat/{conversation.id}/?token=nope")
        ) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            return closed.value.rcvd.code

    assert asyncio.run(attempt()) == 4403
