"""Fixtures for ticket tests: the raw email corpus, tickets in known states, an
SMTP server on a free port, and nobody staffed unless a test says so."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from libraries import presence
from libraries.models import Library
from tickets import services, tokens
from tickets.models import Ticket, TicketMessage

EMAILS = Path(__file__).resolve().parent / "emails"


@pytest.fixture(autouse=True)
def nobody_staffed():
    presence.store().clear()
    yield
    presence.store().clear()


def eml(name: str, **placeholders: str) -> bytes:
    """A corpus message with its `{{NAME}}` placeholders filled in."""
    raw = (EMAILS / name).read_bytes()
    for key, value in placeholders.items():
        raw = raw.replace(f"{{{{{key}}}}}".encode(), value.encode())
    return raw


def thread_placeholders(ticket: Ticket, reply: TicketMessage) -> dict[str, str]:
    patron = ticket.messages.filter(direction="inbound").order_by("created_at", "id")[0]
    return {
        "TOKEN": tokens.reply_token(ticket.pk),
        "REFERENCE": ticket.reference,
        "OUR_MESSAGE_ID": reply.message_id,
        "PATRON_MESSAGE_ID": patron.message_id,
    }


@pytest.fixture
def ask(db) -> Callable[..., Ticket]:
    """A ticket from the offline question form."""

    def make(
        library: Library | str = "springfield",
        question: str = "Do you have Moby-Dick in large print?",
        email: str = "pat.doe@gmail.example",
        name: str = "Pat Doe",
        **kwargs,
    ) -> Ticket:
        slug = library if isinstance(library, str) else library.slug
        return services.create_ticket_from_question(
            library_slug=slug, question=question, email=email, name=name, **kwargs
        )

    return make


@pytest.fixture
def marge(springfield, make_librarian):
    return make_librarian(springfield, display_name="Marge")


@pytest.fixture
def answered(springfield, marge, ask) -> tuple[Ticket, TicketMessage]:
    """A springfield ticket that Marge answered: (ticket, her reply)."""
    ticket = ask(springfield)
    reply = services.reply_to_ticket(
        reference=ticket.reference,
        librarian=marge,
        body="Hello Pat,\n\nYes, we have Moby-Dick in large print at the main branch.",
    )
    ticket.refresh_from_db()
    return ticket, reply


class SmtpSink:
    """Messages an aiosmtpd server accepted; `fail_next` refuses that many first."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.refused = 0
        self.fail_next = 0
        self.failure = "451 4.3.0 Temporary failure, try again later"
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:  # noqa: N802
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.refused += 1
                return self.failure
            self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 15) -> list[Envelope]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        pytest.fail(f"the SMTP server got {len(self.messages)} of {count} messages")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings) -> Iterator[tuple[SmtpSink, int]]:
    """A real SMTP server on 127.0.0.1 and a free port; Django's mailer points at it."""
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 10},
        }
    }
    try:
        yield sink, port
    finally:
        controller.stop()
