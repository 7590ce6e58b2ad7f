"""Fixtures for chat tests: patron and desk sockets through the real ASGI app."""

import json
from collections.abc import Callable

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from chat import services
from libraries import presence

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def clean_presence():
    presence.store().clear()
    yield
    presence.store().clear()


@pytest.fixture
def start_chat(db) -> Callable[..., tuple]:
    def start(
        library_slug: str = "springfield",
        question: str = "Do you have Moby-Dick?",
        **kw,
    ):
        return services.start_conversation(
            library_slug=library_slug, question=question, **kw
        )

    return start


def patron_socket(conversation_id, token, *, after_seq: int | None = None):
    path = f"/ws/chat/{conversation_id}/?token={token}"
    if after_seq is not None:
        path += f"&after_seq={after_seq}"
    from refdesk.asgi import application

    return WebsocketCommunicator(application, path, headers=[ORIGIN])


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.fixture
def desk_cookie(transactional_db) -> Callable:
    return session_cookie


def desk_socket(cookie: bytes | None, *, origin: bytes | None = b"http://localhost"):
    headers = []
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie:
        headers.append((b"cookie", cookie))
    from refdesk.asgi import application

    return WebsocketCommunicator(application, "/ws/desk/", headers=headers)


async def receive(communicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def receive_until(communicator, kind: str, timeout: float = 3) -> dict:
    """Skip frames until one of `kind` arrives (e.g. past status/history)."""
    while True:
        frame = await receive(communicator, timeout)
        if frame["type"] == kind:
            return frame


async def open_desk(cookie: bytes):
    """Connect a desk and read its opening frames: presence, queue (and accepted)."""
    desk = desk_socket(cookie)
    connected, _ = await desk.connect()
    assert connected
    presence_frame = await receive(desk)
    queue = await receive(desk)
    return desk, presence_frame, queue


def make_user(username: str = "visitor"):
    return get_user_model().objects.create_user(
        username=username, password="x-long-password-1"
    )


@pytest.fixture
def staffed(make_librarian) -> Callable:
    """Make a library staffed: one of its librarians has an available desk."""

    def staff(library, socket_id: str | None = None):
        librarian = make_librarian(library)
        presence.touch(
            library_id=library.id,
            librarian_id=librarian.id,
            socket_id=socket_id or f"test-desk-{librarian.id}",
            available=True,
        )
        return librarian

    return staff
