"""Fixtures for the knowledge-base tests: the demo FAQ, signed-in desk clients,
waiting chats, and clean rate limits and presence between tests."""

from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.test import Client

from chat import services as chat_services
from faq.demo import seed_faq_demo
from faq.models import Answer
from libraries import presence
from libraries.models import Librarian, Library, Role
from libraries.rendering import ALLOWED_TAGS


@pytest.fixture(autouse=True)
def clean_rate_limits_and_presence():
    """Forget this run's rate-limit counters and desks (only this run's keys)."""
    _forget()
    yield
    _forget()


def _forget() -> None:
    presence.store().clear()
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=cache.make_key("ratelimit:*")))
    if keys:
        client.delete(*keys)


@pytest.fixture
def demo_libraries(springfield, shelbyville, ogdenville) -> dict[str, Library]:
    return {lib.slug: lib for lib in (springfield, shelbyville, ogdenville)}


@pytest.fixture
def demo_faq(demo_libraries) -> Callable[[str], Answer]:
    """Seed the demo FAQ (38 answers) and look answers up by question."""
    seed_faq_demo()

    def answer(question: str) -> Answer:
        return Answer.objects.get(question=question)

    return answer


@pytest.fixture
def desk_client(make_librarian) -> Callable[..., tuple[Client, Librarian]]:
    """A test client signed in as a new librarian of `library` (CSRF enforced)."""

    def make(
        library: Library | None, *, role: str = Role.LIBRARIAN, **kwargs
    ) -> tuple[Client, Librarian]:
        librarian = make_librarian(library, role=role, **kwargs)
        client = Client(enforce_csrf_checks=True)
        client.force_login(librarian.user)
        return client, librarian

    return make


def csrf_headers(client: Client) -> dict[str, str]:
    """Fetch a CSRF cookie the way the desk page does and return the header."""
    from django.middleware.csrf import _get_new_csrf_string

    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    return {"HTTP_X_CSRFTOKEN": token}


@pytest.fixture
def waiting_chat(make_librarian) -> Callable[..., tuple]:
    """Start a chat that waits in `library`'s local queue (a desk is available)."""

    def start(library: Library, question: str = "Do you have Moby-Dick?", **kwargs):
        librarian = make_librarian(library)
        presence.touch(
            library_id=library.id,
            librarian_id=librarian.pk,
            socket_id=f"faq-desk-{librarian.pk}",
            available=True,
        )
        conversation, token = chat_services.start_conversation(
            library_slug=library.slug, question=question, **kwargs
        )
        return conversation, token, librarian

    return start


# Markdown that tries every trick; rendered anywhere, it must come out harmless.
HOSTILE_MARKDOWN = """\
<script>alert('x')</script>

[click me](javascript:alert(1)) and [data](data:text/html;base64,PHNjcmlwdD4=)

<img src=x onerror="alert(1)"> <a href="#" onclick="alert(1)">raw</a>

<iframe src="https://evil.example"></iframe><style>body{display:none}</style>

**Bold** and a [good link](https://example.org).
"""


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_harmless(html: str) -> None:
    """Only the sanitiser's allowed tags, no event handlers or styles, and links
    only to http(s), mailto or tel: escaped text may say anything."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.elements:
        assert tag in ALLOWED_TAGS | {"mark"}, f"<{tag}> in {html!r}"
        if tag == "a":
            assert set(attrs) <= {"href", "title", "rel"}, html
            href = (attrs.get("href") or "").strip().lower()
            assert not href or href.startswith(
                ("http:", "https:", "mailto:", "tel:")
            ), html
        else:
            assert attrs == {}, html
